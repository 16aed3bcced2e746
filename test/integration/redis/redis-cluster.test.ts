import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCacheKeys } from '../../../src/platform/cache.js';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  testKeyRing,
  type TestDatabase,
} from '../../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV } from '../../helpers/auth.js';
import { uniqueUserId } from '../../helpers/factories.js';
import { cacheBecomes, LedgerUser, metric } from '../../helpers/ledger.js';
import { useRedisCluster } from '../../helpers/redis-cluster.js';

/*
 * The service on a real Redis Cluster (REDIS_CLUSTER_NODES): 3 masters, each with a replica, from
 * the machine's redis-server on private ports. Two apps share it (as two processes would): one
 * writes, the other reads, and every read is checked against what was written, so a stale cached
 * read fails the test; hits are counted exactly, so a cache that fell back to the database fails
 * it too. Then the cluster is disrupted under them: a master paused during a write (the write's
 * invalidation times out), a manual failover to a replica, a master stopped and started again.
 */

const cluster = useRedisCluster({ masters: 3, replicasPerMaster: 1 });
let database: TestDatabase;
const apps: FastifyInstance[] = [];
const prefix = `fido-cl-${randomBytes(4).toString('hex')}`;
let writer: FastifyInstance;
let reader: FastifyInstance;
const logs: string[][] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  // Two processes of one deployment share their keys.
  const keyRing = testKeyRing();
  for (let i = 0; i < 2; i += 1) {
    const capture = captureLogs('info');
    logs.push(capture.lines);
    const app = await buildTestApp(database, {
      env: {
        REDIS_CLUSTER_NODES: cluster.seeds,
        CACHE_PREFIX: prefix,
        // Generous for a loaded machine: a timeout here is a cache error, and the test counts them.
        CACHE_TIMEOUT_MS: '1000',
      },
      deps: { logger: capture.logger, keyRing },
    });
    apps.push(app);
    await cacheBecomes(app, 'ok', 20_000);
  }
  [writer, reader] = apps as [FastifyInstance, FastifyInstance];
}, 60_000);

afterAll(async () => {
  for (const app of apps) await app.close();
  await database?.drop();
});

const total = async (name: string) => (await metric(writer, name)) + (await metric(reader, name));
const logged = (app: number, message: string) =>
  logs[app]!.filter((line) => line.includes(`"msg":"${message}`)).length;

/** A user with two transactions, written through the writer. */
async function userWithHistory(tag: string, id = uniqueUserId(tag)): Promise<LedgerUser> {
  const user = new LedgerUser(writer, id);
  await user.create(100, 'credit', '2024-10-10T09:00:00Z');
  await user.create(40.5, 'debit', '2024-10-11T09:00:00Z');
  return user;
}

/** Reads until both apps answer from the cache again (bounded): the cache came back. */
async function hitsAgain(user: LedgerUser): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const before = await total('fido_cache_hits_total');
    await user.on(reader).expectCurrent();
    await user.on(writer).expectCurrent();
    if ((await total('fido_cache_hits_total')) > before) return;
    if (Date.now() > deadline) throw new Error('the cache served no hit again after 20 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the cache on a Redis Cluster', () => {
  it('answers repeated reads from the cache, spreads keys over every master, with no error and nothing stale', async () => {
    // Four users whose slots each master serves: random ids left one master empty 2% of runs.
    const idsByMaster = new Map<number, string[]>();
    for (let tries = 0; [...idsByMaster.values()].flat().length < 12; tries += 1) {
      if (tries > 1_000) throw new Error('no spread of user ids over the three masters');
      const id = uniqueUserId('spread');
      const master = await cluster.masterOf(redisCacheKeys(prefix, id).generation);
      const ids = idsByMaster.get(master) ?? [];
      if (ids.length < 4) idsByMaster.set(master, [...ids, id]);
    }
    const users: LedgerUser[] = [];
    for (const id of [...idsByMaster.values()].flat()) {
      users.push(await userWithHistory('spread', id));
    }
    const hits = await total('fido_cache_hits_total');
    const misses = await total('fido_cache_misses_total');

    for (const user of users) {
      // Three reads each (history, analytics, range): computed by the writer, cached, then
      // answered from the cache by the reader and by the writer.
      await user.on(writer).expectCurrent();
      await user.on(reader).expectCurrent();
      await user.on(writer).expectCurrent();
    }
    expect(await total('fido_cache_hits_total')).toBe(hits + 6 * users.length);
    expect(await total('fido_cache_misses_total')).toBe(misses + 3 * users.length);

    // A write through one app, then reads through both: never the entry from before it.
    for (const user of users) {
      const [id] = [...user.rows.keys()];
      await user.on(reader).update(id!, { amount: 77 });
      await user.on(writer).expectCurrent();
      await user.on(reader).expectCurrent();
    }

    // Every master holds entries (the users' slots are spread), and every user's keys sit on the
    // master serving its slot.
    const perMaster = await cluster.keysPerMaster(`${prefix}:*`);
    expect(perMaster.size).toBe(3);
    for (const [port, keys] of perMaster) {
      expect(
        keys.filter((key) => key.includes(':e:')).length,
        `entries on ${port}`,
      ).toBeGreaterThan(0);
    }
    for (const user of users.slice(0, 3)) {
      const keys = redisCacheKeys(prefix, user.id);
      const master = await cluster.masterOf(keys.generation);
      expect(perMaster.get(master)).toContain(keys.generation);
    }

    expect(await total('fido_cache_errors_total')).toBe(0);
    expect(await total('fido_rate_limit_store_errors_total')).toBe(0);
  }, 120_000);
});

describe('the cache across cluster disruptions', () => {
  it('a master paused during a write: its invalidation times out, no read is stale, the cache comes back', async () => {
    const user = await userWithHistory('pause');
    await hitsAgain(user);
    const master = await cluster.masterOf(redisCacheKeys(prefix, user.id).generation);
    const bumped = [logged(0, 'cache epoch bumped'), logged(1, 'cache epoch bumped')];

    const readerErrors = await metric(reader, 'fido_cache_errors_total');
    await cluster.pause(master, 10_000);
    const [id] = [...user.rows.keys()];
    await user.on(writer).update(id!, { amount: 55 });
    // While paused: reads through both apps time out on the cache and come from the database.
    await user.on(reader).expectCurrent();
    await user.on(writer).expectCurrent();
    // The reader's three reads did reach the paused master (and gave up on it).
    expect(await metric(reader, 'fido_cache_errors_total')).toBe(readerErrors + 3);

    await cacheBecomes(writer, 'ok', 20_000);
    await cacheBecomes(reader, 'ok', 20_000);
    await user.on(reader).expectCurrent();
    await user.on(writer).expectCurrent();
    await hitsAgain(user);
    // The writer, whose invalidation was not confirmed, made every older entry unreachable.
    expect(logged(0, 'cache epoch bumped')).toBeGreaterThan(bumped[0]!);
    await user.on(reader).update(id!, { amount: 56 });
    await user.on(writer).expectCurrent();
  }, 120_000);

  it('a manual failover to a replica: no read is stale, both apps notice and bump, the cache comes back', async () => {
    const user = await userWithHistory('failover');
    await hitsAgain(user);
    const master = await cluster.masterOf(redisCacheKeys(prefix, user.id).generation);
    const disrupted = [logged(0, 'cache disrupted'), logged(1, 'cache disrupted')];

    const promoted = await cluster.failover(master);
    expect(await cluster.masterOf(redisCacheKeys(prefix, user.id).generation)).toBe(promoted);

    // The reader's first read is redirected to the new master: it is not trusted, and not used.
    await user.on(reader).expectCurrent();
    const [id] = [...user.rows.keys()];
    await user.on(writer).update(id!, { amount: 12 });
    await user.on(reader).expectCurrent();
    await user.on(writer).expectCurrent();
    expect(logged(1, 'cache disrupted')).toBeGreaterThan(disrupted[1]!);
    expect(logged(0, 'cache disrupted')).toBeGreaterThan(disrupted[0]!);

    await hitsAgain(user);
    await user.on(writer).update(id!, { amount: 13 });
    await user.on(reader).expectCurrent();
  }, 120_000);

  it('a master stopped and started again (empty): no read is stale, the cache comes back', async () => {
    const user = await userWithHistory('restart');
    await hitsAgain(user);
    const master = await cluster.masterOf(redisCacheKeys(prefix, user.id).generation);
    const node = cluster.node(master);

    await node.server.stop();
    try {
      const [id] = [...user.rows.keys()];
      // Its invalidation fails outright (the node is gone); every read comes from the database.
      await user.on(writer).update(id!, { amount: 31 });
      await user.on(reader).expectCurrent();
      await user.on(writer).expectCurrent();
      await user.on(writer).create(5, 'credit', '2024-10-12T09:00:00Z');
      await user.on(reader).expectCurrent();
    } finally {
      await node.server.start();
    }
    // Back as a master (empty), or as the replica of the one that took over meanwhile.
    await cluster.settled();
    await cacheBecomes(writer, 'ok', 30_000);
    await cacheBecomes(reader, 'ok', 30_000);
    await user.on(reader).expectCurrent();
    await user.on(writer).expectCurrent();
    await hitsAgain(user);
    const [id] = [...user.rows.keys()];
    await user.on(reader).update(id!, { amount: 32 });
    await user.on(writer).expectCurrent();
    await user.on(reader).expectCurrent();
  }, 180_000);
});

// Last: once an API key exists, the open (no-auth) mode the other tests use is closed.
describe('rate limits on a Redis Cluster', () => {
  it('are shared by two apps: exactly RATE_LIMIT_MAX requests pass in all', async () => {
    const max = 25;
    const limited: FastifyInstance[] = [];
    try {
      for (let i = 0; i < 2; i += 1) {
        limited.push(
          await buildTestApp(database, {
            env: {
              ...REQUIRED_AUTH_ENV,
              REDIS_CLUSTER_NODES: cluster.seeds,
              CACHE_PREFIX: `${prefix}-rl`,
              CACHE_TIMEOUT_MS: '1000',
              RATE_LIMIT_MAX: String(max),
              RATE_LIMIT_WINDOW_SECONDS: '3600',
            },
          }),
        );
        await cacheBecomes(limited[i]!, 'ok', 20_000);
      }
      for (let round = 0; round < 3; round += 1) {
        const { key } = await createKey(database, ['transactions:read']);
        const statuses: number[] = [];
        for (let i = 0; i < max + 6; i += 1) {
          const response = await limited[i % 2]!.inject({
            method: 'GET',
            url: '/api/v1/transaction/history/nobody',
            headers: bearer(key),
          });
          statuses.push(response.statusCode);
        }
        expect(statuses.filter((status) => status === 404)).toHaveLength(max);
        expect(statuses.slice(max).every((status) => status === 429)).toBe(true);
      }
      for (const app of limited) {
        expect(await metric(app, 'fido_rate_limit_store_errors_total')).toBe(0);
        expect(await metric(app, 'fido_rate_limited_total')).toBeGreaterThan(0);
      }
    } finally {
      for (const app of limited) await app.close();
    }
  }, 120_000);
});
