import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryStore } from '../../../src/platform/cache.js';
import { createLogger } from '../../../src/platform/logging.js';
import {
  createRateLimiter,
  redisRateLimitStore,
  reservationBlock,
  type RateLimiter,
} from '../../../src/platform/rate-limit.js';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV } from '../../helpers/auth.js';
import { useRedisServer } from '../../helpers/redis-server.js';

/*
 * Rate limits in Redis: two replicas share one count; when Redis goes away each replica keeps
 * counting in its own memory (limits still hold per replica, no request fails), and shares again
 * once Redis is back. Each process reserves the caller's quota from Redis a block at a time, so
 * most requests cost no round trip; the Redis server is this file's own, so its command
 * statistics count this file's calls only.
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

async function request(app: FastifyInstance, key: string) {
  return app.inject({
    method: 'GET',
    url: '/api/v1/transaction/history/nobody',
    headers: bearer(key),
  });
}

async function get(app: FastifyInstance, key: string): Promise<number> {
  return (await request(app, key)).statusCode;
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

/** Script runs the server has answered (`INFO commandstats`): with the text, and by SHA1. */
async function scriptCalls(client: Redis): Promise<{ eval: number; evalsha: number }> {
  const info = await client.info('commandstats');
  const calls = (command: string) =>
    Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return { eval: calls('eval'), evalsha: calls('evalsha') };
}

/** The Redis key holding `identity`'s count (hashed, as the limiter names it). */
function countKey(prefix: string, identity: string): string {
  return `${prefix}:rl:${createHash('sha256').update(identity).digest('base64url').slice(0, 22)}`;
}

/** Waits until Redis has expired `key`: the window it counted has ended. */
async function windowEnds(client: Redis, key: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await client.exists(key)) === 1) {
    if (Date.now() > deadline) throw new Error(`${key} never expired`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('rate limit quota reserved in blocks', () => {
  let client: Redis;
  const limiters: RateLimiter[] = [];

  beforeAll(() => {
    client = new Redis(redis.url);
  });

  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
    client?.disconnect();
  });

  /** A limiter as one replica builds it, on this file's Redis. */
  async function replica(prefix: string, windowSeconds: number): Promise<RateLimiter> {
    const limiter = createRateLimiter({
      store: redisRateLimitStore({ url: redis.url, prefix, timeoutMs: 2_000 }),
      windowSeconds,
      logger: createLogger('silent'),
    });
    limiters.push(limiter);
    await limiter.ready(10_000);
    return limiter;
  }

  it('let one replica count exactly, with one EVALSHA per block instead of one per request', async () => {
    const max = 1_000;
    const prefix = `fido-rl-${randomBytes(6).toString('hex')}`;
    const app = await buildTestApp(database, {
      env: {
        ...REQUIRED_AUTH_ENV,
        REDIS_URL: redis.url,
        CACHE_PREFIX: prefix,
        CACHE_TIMEOUT_MS: '2000',
        RATE_LIMIT_MAX: String(max),
        RATE_LIMIT_WINDOW_SECONDS: '3600',
      },
      // The cache's read script runs by SHA1 too: counted here would be the limiter's only.
      deps: { cacheStore: memoryStore(100) },
    });
    try {
      // Another caller first: the script's text has then been sent on the connection once.
      const warmUp = await createKey(database, ['transactions:read']);
      expect(await get(app, warmUp.key)).toBe(404);
      const { id, key } = await createKey(database, ['transactions:read']);
      const before = await scriptCalls(client);

      for (let i = 1; i <= max; i += 1) {
        const response = await request(app, key);
        expect(response.statusCode).toBe(404);
        expect(response.headers['ratelimit-remaining']).toBe(String(max - i));
      }
      const refused = await request(app, key);
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['ratelimit-remaining']).toBe('0');

      const after = await scriptCalls(client);
      const evalsha = after.evalsha - before.evalsha;
      // The counting script runs by SHA1, once per block: 10 round trips for 1,001 requests.
      expect(evalsha).toBeGreaterThan(0);
      expect(evalsha).toBeLessThanOrEqual(max / reservationBlock(max));
      // The count in Redis is what was handed out: no count reserved for nothing, none for the
      // refused request (refused without asking Redis).
      expect(await client.get(countKey(prefix, id))).toBe(String(max));
    } finally {
      await app.close();
    }
  });

  it('never let two replicas sharing Redis admit more than max together', async () => {
    const max = 1_000;
    const block = reservationBlock(max);
    const prefix = `fido-rl-${randomBytes(6).toString('hex')}`;
    const replicas = [await replica(prefix, 3600), await replica(prefix, 3600)];
    const before = await scriptCalls(client);

    // Concurrent requests of one caller, unevenly spread over the replicas.
    const decisions = await Promise.all(
      Array.from({ length: 1_500 }, (_, i) => replicas[(i * 7) % 3 === 0 ? 0 : 1]!.check('c', max)),
    );
    const allowed = decisions.filter((d) => d.allowed).length;
    expect(allowed).toBeLessThanOrEqual(max);
    // Whatever one replica reserved and did not spend is refused early: at most a block.
    expect(allowed).toBeGreaterThanOrEqual(max - block);
    const middle = await scriptCalls(client);
    const calls = middle.eval + middle.evalsha - (before.eval + before.evalsha);
    // At most one reservation per block of max, and one more per replica to learn it is over.
    expect(calls).toBeLessThanOrEqual(max / block + replicas.length);

    // Once over, the replicas refuse on their own: a block left unspent may still be used, and
    // nothing gets past max.
    let more = 0;
    for (let i = 0; i < 200; i += 1)
      if ((await replicas[i % 2]!.check('c', max)).allowed) more += 1;
    expect(allowed + more).toBeLessThanOrEqual(max);
    const after = await scriptCalls(client);
    expect(after.eval + after.evalsha - (middle.eval + middle.evalsha)).toBeLessThanOrEqual(
      replicas.length,
    );
  });

  it('reset with the window: refused callers pass again on every replica', async () => {
    const prefix = `fido-rl-${randomBytes(6).toString('hex')}`;
    const [a, b] = [await replica(prefix, 2), await replica(prefix, 2)];
    const round = async () => [
      (await a.check('c', 2)).allowed,
      (await b.check('c', 2)).allowed,
      (await a.check('c', 2)).allowed,
      (await b.check('c', 2)).allowed,
    ];
    expect(await round()).toEqual([true, true, false, false]);
    await windowEnds(client, countKey(prefix, 'c'));
    expect(await round()).toEqual([true, true, false, false]);
  });

  it('drop a block reserved in one window when that window ends', async () => {
    const max = 300;
    const prefix = `fido-rl-${randomBytes(6).toString('hex')}`;
    const limiter = await replica(prefix, 1);
    const key = countKey(prefix, 'c');
    expect(await limiter.check('c', max)).toMatchObject({ allowed: true, remaining: max - 1 });
    expect(await client.get(key)).toBe(String(reservationBlock(max)));
    await windowEnds(client, key);
    // The rest of the old block is gone: a fresh reservation, counting from 1 again.
    expect(await limiter.check('c', max)).toMatchObject({ allowed: true, remaining: max - 1 });
    expect(await client.get(key)).toBe(String(reservationBlock(max)));
  });
});
