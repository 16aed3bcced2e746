import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCache, redisStore } from '../../../src/platform/cache.js';
import { loggerOptions } from '../../../src/platform/logging.js';
import { createRedisConnection } from '../../../src/platform/redis.js';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { uniqueUserId } from '../../helpers/factories.js';
import { cacheBecomes, LedgerUser, metric, readyz } from '../../helpers/ledger.js';
import { useRedisServer } from '../../helpers/redis-server.js';
import { TcpProxy } from '../../helpers/tcp-proxy.js';

/*
 * The cache's Redis goes away under a running service and comes back. Redis is a private
 * `redis-server` the test stops and starts (a restart comes back empty), or reaches the app only
 * through a TCP proxy the test cuts (Redis keeps every key, stale ones included). While it is gone
 * every request is answered from the database, exactly; once it is back nothing cached before a
 * write the cache missed is ever served.
 */

/** Every log line the app writes, parsed. */
class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
  count(prefix: string): number {
    return this.lines.filter((line) => String(line.msg).startsWith(prefix)).length;
  }
}

interface Harness {
  app: FastifyInstance;
  logs: LogCapture;
  prefix: string;
}

const redis = useRedisServer();
let database: TestDatabase;
const harnesses: Harness[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  for (const harness of harnesses) await harness.app.close();
  await database?.drop();
});

// A test that failed half-way leaves the next one a running server.
afterEach(async () => {
  if (!redis.running) await redis.start();
});

/** The app on the shared database, its cache in the Redis at `redisUrl` under a prefix of its own. */
async function startApp(redisUrl: string): Promise<Harness> {
  const logs = new LogCapture();
  const prefix = `fido-outage-${randomBytes(6).toString('hex')}`;
  const app = await buildTestApp(database, {
    env: { REDIS_URL: redisUrl, CACHE_PREFIX: prefix, CACHE_TIMEOUT_MS: '250' },
    deps: { logger: pino(loggerOptions('info'), logs) },
  });
  const harness = { app, logs, prefix };
  harnesses.push(harness);
  // buildApp does not wait for the connection: until it is up, requests skip the cache.
  await cacheBecomes(app, 'ok');
  return harness;
}

/** A direct client for inspecting the private server (never through a proxy). */
async function inspector(): Promise<Redis> {
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  return client;
}

/** Every key under `prefix` and its value, each byte one character (values may be binary). */
async function dump(prefix: string): Promise<Map<string, string>> {
  const client = await inspector();
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const values = keys.length === 0 ? [] : await client.mgetBuffer(...keys);
    return new Map(keys.map((key, i) => [key, values[i]?.toString('latin1') ?? '']));
  } finally {
    client.disconnect();
  }
}

describe('Redis stops, and restarts empty', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startApp(redis.url);
  });

  it('serves every request from the database meanwhile, and uses the cache again after', async () => {
    const { app, logs } = harness;
    const user = new LedgerUser(harness.app, uniqueUserId('outage'));
    const first = await user.create(100, 'credit', '2024-10-10T09:00:00Z');
    const second = await user.create(40.5, 'debit', '2024-10-11T09:00:00Z');
    await user.create(7, 'credit', '2024-09-30T09:00:00Z');

    // Warm: the first reads fill the cache, the second ones are answered from it.
    await user.expectCurrent();
    const hitsBefore = await metric(app, 'fido_cache_hits_total');
    await user.expectCurrent();
    expect(await metric(app, 'fido_cache_hits_total')).toBe(hitsBefore + 3);
    expect(await readyz(app)).toEqual({ status: 200, cache: 'ok' });
    const errors = await metric(app, 'fido_cache_errors_total');
    const unavailable = logs.count('cache unavailable');
    const recovered = logs.count('cache recovered');

    await redis.stop();

    await user.expectCurrent();
    await user.expectCurrent();
    await user.create(250, 'credit', '2024-10-12T09:00:00Z');
    await user.expectCurrent();
    await user.update(first, { amount: 120 });
    await user.expectCurrent();
    await user.remove(second);
    await user.expectCurrent();
    expect(await readyz(app)).toEqual({ status: 200, cache: 'degraded' });
    expect(await metric(app, 'fido_cache_errors_total')).toBeGreaterThan(errors);
    // Once per outage, not once per request.
    expect(logs.count('cache unavailable')).toBe(unavailable + 1);
    expect(logs.count('cache recovered')).toBe(recovered);

    await redis.start();
    await cacheBecomes(app, 'ok');
    expect(logs.count('cache recovered')).toBe(recovered + 1);
    expect(logs.count('cache unavailable')).toBe(unavailable + 1);

    await user.expectCurrent();
    const hitsAfter = await metric(app, 'fido_cache_hits_total');
    await user.expectCurrent();
    expect(await metric(app, 'fido_cache_hits_total')).toBe(hitsAfter + 3);
    // And a write still invalidates what is cached.
    await user.update(first, { amount: 121 });
    await user.expectCurrent();
  });
});

describe('Redis is cut off but keeps its keys', () => {
  let harness: Harness;
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = new TcpProxy('127.0.0.1', redis.port);
    await proxy.start();
    harness = await startApp(`redis://127.0.0.1:${proxy.port}`);
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('never serves an entry cached before a write it could not invalidate', async () => {
    const { app, logs, prefix } = harness;
    const user = new LedgerUser(harness.app, uniqueUserId('outage'));
    const first = await user.create(100, 'credit', '2024-10-10T09:00:00Z');
    const second = await user.create(30, 'debit', '2024-10-11T09:00:00Z');
    await user.expectCurrent();
    const hits = await metric(app, 'fido_cache_hits_total');
    await user.expectCurrent();
    expect(await metric(app, 'fido_cache_hits_total')).toBe(hits + 3);
    const errors = await metric(app, 'fido_cache_errors_total');
    const unavailable = logs.count('cache unavailable');
    const recovered = logs.count('cache recovered');
    const before = await dump(prefix);
    const entries = [...before.keys()].filter((key) =>
      /:(history-page[^:]*|analytics[^:]*):/.test(key),
    );
    expect(entries).toHaveLength(3);

    await proxy.cut();

    await user.update(first, { amount: 175 });
    await user.create(60, 'credit', '2024-10-12T09:00:00Z');
    await user.remove(second);
    await user.expectCurrent();
    expect(await readyz(app)).toEqual({ status: 200, cache: 'degraded' });
    expect(await metric(app, 'fido_cache_errors_total')).toBeGreaterThan(errors);
    // The invalidations never reached Redis: it still holds exactly the pre-outage entries.
    expect(await dump(prefix)).toEqual(before);
    expect(logs.count('cache unavailable')).toBe(unavailable + 1);

    await proxy.restore();
    await cacheBecomes(app, 'ok');
    expect(logs.count('cache recovered')).toBe(recovered + 1);
    expect(logs.count('cache epoch bumped after an outage')).toBeGreaterThanOrEqual(1);
    expect(logs.count('cache unavailable')).toBe(unavailable + 1);

    // The stale entries are still there, and still not served.
    const after = await dump(prefix);
    for (const key of entries) expect(after.get(key)).toBe(before.get(key));
    await user.expectCurrent();
    const hitsAfter = await metric(app, 'fido_cache_hits_total');
    await user.expectCurrent();
    expect(await metric(app, 'fido_cache_hits_total')).toBe(hitsAfter + 3);
  });
});

describe('Redis stalls: the connection stays open, commands time out', () => {
  /** Every client's commands wait until the pause ends (it blocks CLIENT UNPAUSE too). */
  async function pause(ms: number): Promise<number> {
    const admin = await inspector();
    try {
      await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL');
    } finally {
      admin.disconnect();
    }
    return Date.now() + ms;
  }

  /** Waits for the pause to end: Redis answers a PING, held until then, once it has. */
  async function pauseEnds(): Promise<void> {
    const admin = await inspector();
    try {
      await admin.ping();
    } finally {
      admin.disconnect();
    }
  }

  it('serves from the database meanwhile, and uses the cache again after', async () => {
    const harness = await startApp(redis.url);
    const { app, logs } = harness;
    const user = new LedgerUser(harness.app, uniqueUserId('outage'));
    const first = await user.create(100, 'credit', '2024-10-10T09:00:00Z');
    await user.expectCurrent();
    await user.expectCurrent();
    const unavailable = logs.count('cache unavailable');
    const recovered = logs.count('cache recovered');

    const pausedUntil = await pause(4_000);
    await user.update(first, { amount: 80 });
    await user.expectCurrent();
    expect(await readyz(app)).toEqual({ status: 200, cache: 'degraded' });
    // Each cache operation gave up after CACHE_TIMEOUT_MS: all of that took less than the pause.
    expect(Date.now()).toBeLessThan(pausedUntil);
    expect(logs.count('cache unavailable')).toBe(unavailable + 1);

    await pauseEnds();
    await user.expectCurrent();
    await cacheBecomes(app, 'ok', 5_000);
    expect(logs.count('cache recovered')).toBe(recovered + 1);
    const hits = await metric(app, 'fido_cache_hits_total');
    await user.expectCurrent();
    expect(await metric(app, 'fido_cache_hits_total')).toBe(hits + 3);
  });

  // After an invalidation timed out on a connection that never dropped, readiness itself
  // finishes the pending epoch bump: an instance serving no reads must not stay 'degraded'.
  it('reports the cache ok again from readiness alone, with no read', async () => {
    const harness = await startApp(redis.url);
    const user = new LedgerUser(harness.app, uniqueUserId('outage'));
    const first = await user.create(100, 'credit', '2024-10-10T09:00:00Z');
    await pause(1_000);
    await user.update(first, { amount: 80 });
    await pauseEnds();
    await cacheBecomes(harness.app, 'ok', 3_000);
  });
});

describe('reads of many requests at once', () => {
  // Each request's cache read was a write(2) of its own to Redis (a quarter of a cached analytics
  // request's CPU): reads issued in the same turn of the event loop now leave in one write.
  it('reach Redis in one write, and each gets its own answer', async () => {
    const connection = createRedisConnection({ url: redis.url, timeoutMs: 2_000 });
    const store = redisStore({ connection, prefix: `fido-test-${randomBytes(4).toString('hex')}` });
    try {
      await connection.ready(5_000);
      const users = Array.from({ length: 50 }, () => uniqueUserId('burst'));
      const first = await Promise.all(users.map((user) => store.read(user, 'entry', 60)));
      await Promise.all(
        users.map((user, i) =>
          store.write(user, first[i]!.generation, 'entry', Buffer.from(`value of ${user}`), 60),
        ),
      );
      const socket = (connection.client as Redis).stream;
      const write = socket.write.bind(socket);
      let writes = 0;
      socket.write = ((...args: Parameters<typeof socket.write>) => {
        writes += 1;
        return write(...args);
      }) as typeof socket.write;
      const found = await Promise.all(users.map((user) => store.read(user, 'entry', 60)));
      socket.write = write;
      expect(writes).toBe(1);
      found.forEach((answer, i) => {
        expect(answer.generation).toBe(first[i]!.generation);
        expect(answer.value?.toString()).toBe(`value of ${users[i]}`);
      });
    } finally {
      await connection.close();
    }
  });
});

describe('what Redis holds', () => {
  it('never holds a name, in plain text or encoded, nor a user id', async () => {
    const harness = await startApp(redis.url);
    const names = ['Zephyrine Quillfeather', 'Oluwaseun Brightwater-Mensah'];
    const user = new LedgerUser(harness.app, uniqueUserId('outage'));
    const id = await user.create(12.34, 'credit', '2024-10-10T09:00:00Z', names[0]);
    await user.create(5, 'debit', '2024-10-11T09:00:00Z', names[1]);
    await user.update(id, { name: `${names[0]} Jr` });
    await user.expectCurrent();
    await user.expectCurrent();

    const stored = await dump(harness.prefix);
    const history = [...stored].filter(([key]) => key.includes(':history-page-bytes:'));
    expect(history.length).toBeGreaterThan(0);
    // A history page is cached as one sealed value (key id, then ciphertext as bytes), never as
    // JSON.
    for (const [, value] of history) {
      expect(value).toMatch(/^b1\.[A-Za-z0-9_-]+\./);
      for (const json of ['"data"', '"full_name"', '"pagination"'])
        expect(value).not.toContain(json);
    }
    expect([...stored.keys()].some((key) => key.includes(':analytics'))).toBe(true);

    const forbidden = [...names, `${names[0]} Jr`].flatMap((name) => {
      const bytes = Buffer.from(name, 'utf8');
      return [
        name.toLowerCase(),
        bytes.toString('base64'),
        bytes.toString('base64url'),
        bytes.toString('hex'),
      ];
    });
    for (const part of names.flatMap((name) => name.split(/[ -]/))) {
      forbidden.push(part.toLowerCase());
    }
    for (const [key, value] of stored) {
      const text = `${key}\n${value}`.toLowerCase();
      for (const secret of forbidden) expect(text).not.toContain(secret.toLowerCase());
      expect(key).not.toContain(user.id);
    }
  });
});

describe('generations never come back', () => {
  /*
   * A reader computes from the database before a write and stores its answer under the
   * generation it read. If Redis restarts empty meanwhile (no persistence, a failover, an
   * eviction), the generation the write bumps to must not be the one the reader holds: they are
   * random tokens, never counters that start again from 0.
   */
  it('a stale answer stored across an empty restart is not served', async () => {
    const logger = pino({ level: 'silent' });
    const prefix = `fido-gen-${randomBytes(6).toString('hex')}`;
    const store = redisStore({ url: redis.url, prefix, timeoutMs: 200, logger });
    const cache = createCache(store, { ttlSeconds: 60, logger });
    try {
      await cacheReady(cache);
      const user = 'user-gen';
      // The service has run a while: one outage behind it (epoch 1), one write for this user.
      await store.bumpEpoch();
      await cache.invalidate(user);

      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let computing!: () => void;
      const started = new Promise<void>((resolve) => (computing = resolve));
      const slow = cache.cached(user, 'entry', async () => {
        computing();
        await gate;
        return Buffer.from('read before the write');
      });
      await started;

      await redis.stop();
      await redis.start();
      await cacheReady(cache);
      // The write commits now, and its invalidation reaches Redis.
      await cache.invalidate(user);
      release();
      expect((await slow).toString()).toBe('read before the write');

      const after = await cache.cached(user, 'entry', async () =>
        Buffer.from('read after the write'),
      );
      expect(after.toString()).toBe('read after the write');
    } finally {
      await cache.close();
    }
  });
});

async function cacheReady(cache: { check(): Promise<string> }, within = 10_000): Promise<void> {
  const deadline = Date.now() + within;
  while (Date.now() < deadline) {
    if ((await cache.check()) === 'ok') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the cache did not become ready');
}
