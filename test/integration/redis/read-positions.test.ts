import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, it } from 'vitest';
import { redisPositionStore } from '../../../src/platform/read-replicas.js';
import { TEST_REDIS_URL } from '../../helpers/app.js';
import { expectPositionSemantics } from '../../helpers/positions.js';

describe('write positions in Redis', () => {
  const client = new Redis(TEST_REDIS_URL!, { maxRetriesPerRequest: 1 });
  const prefix = `fido-test-positions-${randomBytes(4).toString('hex')}`;
  afterAll(async () => {
    const keys = await client.keys(`${prefix}:*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  it('raise, never lower, never create from a writer, forget: as in process', async () => {
    await expectPositionSemantics(redisPositionStore(client, prefix));
  });
});
