import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { createTestDatabase, testConfig, type TestDatabase } from '../../helpers/app.js';
import { useRedisServer } from '../../helpers/redis-server.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * Start-up fails after Redis connected (the development key file in DATA_DIR is corrupt, so the
 * key ring cannot load): the cache's and the rate limiter's connections are closed before
 * buildApp rejects. A private server, so every connection it holds is the app's.
 */

const redis = useRedisServer();
const dataDir = mkdtempSync(join(tmpdir(), 'fido-startup-'));
let database: TestDatabase | undefined;
afterAll(async () => {
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Connections the private Redis server holds, other than the one asking. */
async function redisClients(): Promise<number> {
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await client.connect();
  try {
    const list = (await client.call('CLIENT', 'LIST')) as string;
    return list.split('\n').filter((line) => line.trim() !== '').length - 1;
  } finally {
    client.disconnect();
  }
}

describe('a start-up that fails after connecting to Redis', () => {
  it('closes the connections before it rejects', { timeout: 120_000 }, async () => {
    writeFileSync(join(dataDir, 'encryption.key'), 'not a key\n');
    database = await createTestDatabase();
    const config = testConfig({ DATA_DIR: dataDir, REDIS_URL: redis.url });
    const attempt = buildApp(config, { database: database.handle });
    await expect(attempt).rejects.toThrow(/encryption\.key/);
    await eventually(async () => ((await redisClients()) === 0 ? true : undefined), {
      what: 'the Redis connections to close',
    });
  });
});
