import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV } from '../../helpers/auth.js';
import { useRedisServer } from '../../helpers/redis-server.js';

/*
 * Rate limits in Redis: two replicas share one count; when Redis goes away each replica keeps
 * counting in its own memory (limits still hold per replica, no request fails), and shares again
 * once Redis is back.
 */

const MAX = 4;
const redis = useRedisServer();
let database: TestDatabase;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  const prefix = `fido-rl-${randomBytes(6).toString('hex')}`;
  for (let i = 0; i < 2; i += 1) {
    apps.push(
      await buildTestApp(database, {
        env: {
          ...REQUIRED_AUTH_ENV,
          REDIS_URL: redis.url,
          CACHE_PREFIX: prefix,
          CACHE_TIMEOUT_MS: '250',
          RATE_LIMIT_MAX: String(MAX),
          RATE_LIMIT_WINDOW_SECONDS: '3600',
        },
      }),
    );
  }
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await database?.drop();
});

async function get(app: FastifyInstance, key: string): Promise<number> {
  const response = await app.inject({
    method: 'GET',
    url: '/api/v1/transaction/history/nobody',
    headers: bearer(key),
  });
  return response.statusCode;
}

describe('rate limits in Redis', () => {
  it('are shared by replicas: MAX requests in all, whichever replica answers', async () => {
    const { key } = await createKey(database, ['transactions:read']);
    const statuses: number[] = [];
    for (let i = 0; i < MAX + 2; i += 1) statuses.push(await get(apps[i % 2]!, key));
    expect(statuses).toEqual([404, 404, 404, 404, 429, 429]);
  });

  it('fall back to per-replica memory while Redis is down, and never fail a request', async () => {
    await redis.stop();
    try {
      const { key } = await createKey(database, ['transactions:read']);
      const first: number[] = [];
      for (let i = 0; i < MAX + 1; i += 1) first.push(await get(apps[0]!, key));
      expect(first).toEqual([404, 404, 404, 404, 429]);
      // The other replica counts on its own meanwhile: the documented cost of an outage.
      expect(await get(apps[1]!, key)).toBe(404);
    } finally {
      await redis.start();
    }
  });
});
