import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { memoryStore } from '../../../src/platform/cache.js';
import { openDatabase, type DatabaseHandle } from '../../../src/db/client.js';
import { createLogger } from '../../../src/platform/logging.js';
import { memoryPositionStore } from '../../../src/platform/read-replicas.js';
import type { KeyRing } from '../../../src/platform/crypto.js';
import { postTransaction, TEST_REDIS_URL, testConfig, testKeyRing } from '../../helpers/app.js';
import { uniqueUserId } from '../../helpers/factories.js';
import { startStreamingPair, type StreamingPair } from '../../helpers/postgres-replica.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * Read replicas on a real streaming pair (a private primary and a standby fed by
 * pg_basebackup -R). Two app instances share the primary, the replica, the cache and the users'
 * write positions (in Redis when TEST_REDIS_URL is set, as separate processes would; otherwise
 * one in-process store handed to both): a write in A is read in B.
 */
describe('read replicas', () => {
  let pair: StreamingPair;
  let primary: DatabaseHandle;
  let keyRing: KeyRing;
  const apps: FastifyInstance[] = [];
  let a: FastifyInstance;
  let b: FastifyInstance;
  const shared = { cacheStore: memoryStore(10_000), positionStore: memoryPositionStore(10_000) };
  const prefix = `fido-replica-${randomBytes(4).toString('hex')}`;

  async function startApp(env: Record<string, string> = {}): Promise<FastifyInstance> {
    const app = await buildApp(
      testConfig({
        DATABASE_URL: pair.primaryUrl,
        READ_DATABASE_URL: pair.replicaUrl,
        READ_REPLICA_MAX_LAG_MS: '60000',
        ...(TEST_REDIS_URL ? { CACHE_PREFIX: prefix } : {}),
        ...env,
      }),
      { database: primary, keyRing, ...(TEST_REDIS_URL ? {} : shared) },
    );
    apps.push(app);
    return app;
  }

  beforeAll(async () => {
    pair = await startStreamingPair();
    primary = await openDatabase({
      databaseUrl: pair.primaryUrl,
      dataDir: 'unused',
      poolSize: 10,
      statementTimeoutMs: 10_000,
      connectTimeoutMs: 2_000,
      logger: createLogger('silent'),
    });
    await primary.migrate();
    keyRing = testKeyRing();
    a = await startApp();
    b = await startApp();
  }, 180_000);

  afterAll(async () => {
    for (const app of apps) await app.close();
    await primary?.close();
    await pair?.stop();
  }, 60_000);

  /** The value of a counter series in an app's /metrics (0 when absent). */
  async function counter(app: FastifyInstance, series: string): Promise<number> {
    const text = (await app.inject('/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  }
  const replicaReads = (app: FastifyInstance) =>
    counter(app, 'fido_db_reads_total{target="replica_1"}');
  const primaryReads = (app: FastifyInstance) =>
    counter(app, 'fido_db_reads_total{target="primary"}');

  interface HistoryBody {
    data: { id: string; version: number }[];
  }
  interface AnalyticsBody {
    data: { transaction_count: number; credit_total_minor: string };
  }

  /** Every read that may use a replica, in B, must show what A just wrote. */
  async function expectFreshIn(
    app: FastifyInstance,
    user: string,
    expected: { ids: string[]; count: number; byId?: { id: string; version: number | null } },
  ) {
    const history = await app.inject(`/api/v1/transaction/history/${user}?limit=500`);
    if (expected.ids.length === 0) {
      expect(history.statusCode).toBe(404);
    } else {
      expect(history.statusCode).toBe(200);
      expect(
        history
          .json<HistoryBody>()
          .data.map((t) => t.id)
          .sort(),
      ).toEqual([...expected.ids].sort());
    }
    const analytics = await app.inject(`/api/v1/analytics/${user}`);
    if (expected.count === 0) {
      expect(analytics.statusCode).toBe(404);
    } else {
      expect(analytics.statusCode).toBe(200);
      expect(analytics.json<AnalyticsBody>().data.transaction_count).toBe(expected.count);
    }
    if (expected.byId) {
      const one = await app.inject(`/api/v1/transaction/${expected.byId.id}`);
      if (expected.byId.version === null) {
        expect(one.statusCode).toBe(404);
      } else {
        expect(one.statusCode).toBe(200);
        expect(one.json<{ data: { version: number } }>().data.version).toBe(expected.byId.version);
      }
    }
  }

  let attempt = 0;
  /**
   * Waits until each kind of read (history, analytics, by id) has been served by the replica,
   * checking every answer: a query not asked before each time, so the cache cannot answer it.
   */
  async function expectReplicaServes(app: FastifyInstance, user: string, id: string, count = 1) {
    const day = () => String(1 + (attempt % 28)).padStart(2, '0');
    const reads = [
      () => `/api/v1/transaction/history/${user}?limit=${1 + (attempt % 500)}`,
      () =>
        `/api/v1/analytics/range/${user}?end_date=2099-${String(1 + ((attempt >> 5) % 12)).padStart(2, '0')}-${day()}`,
      () => `/api/v1/transaction/${id}`,
    ];
    for (const url of reads) {
      await eventually(
        async () => {
          attempt += 1;
          const before = await replicaReads(app);
          const response = await app.inject(url());
          expect(response.statusCode).toBe(200);
          expect(response.body).toContain(url === reads[1] ? `"transaction_count":${count}` : id);
          return (await replicaReads(app)) > before ? true : undefined;
        },
        { what: `${url()} served by the replica`, timeoutMs: 20_000 },
      );
    }
  }

  /** A first transaction of `user` written in A reads back fresh in B, served by the replica. */
  async function expectNewUserServedByReplica(user: string) {
    const created = await postTransaction(a, { user_id: user });
    await pair.caughtUp();
    await expectFreshIn(b, user, {
      ids: [created.id],
      count: 1,
      byId: { id: created.id, version: 1 },
    });
    await expectReplicaServes(b, user, created.id);
  }

  it('serves history, analytics and reads by id from the replica once it has caught up', async () => {
    await expectNewUserServedByReplica(uniqueUserId('caught-up'));
  });

  it('with replay paused, every read after a write (in another app, cache on) sees the write', async () => {
    const user = uniqueUserId('paused');
    const ids: string[] = [];
    const warm = await postTransaction(a, { user_id: user });
    ids.push(warm.id);
    await pair.caughtUp();
    // Cached in B from the replica before the pause: a later write must make it unreachable.
    await expectFreshIn(b, user, { ids, count: 1 });
    await pair.onReplica('select pg_wal_replay_pause()');
    try {
      const primaryBefore = await primaryReads(b);
      for (let i = 0; i < 4; i += 1) {
        const created = await postTransaction(a, { user_id: user });
        ids.push(created.id);
        await expectFreshIn(b, user, {
          ids,
          count: ids.length,
          byId: { id: created.id, version: 1 },
        });
        // Read twice: the second history and analytics come from the cache, fresh too.
        await expectFreshIn(b, user, { ids, count: ids.length });
      }
      const updated = await a.inject({
        method: 'PATCH',
        url: `/api/v1/transaction/${warm.id}`,
        payload: { transaction_amount: 250 },
      });
      expect(updated.statusCode).toBe(200);
      await expectFreshIn(b, user, {
        ids,
        count: ids.length,
        byId: { id: warm.id, version: 2 },
      });
      const deleted = await a.inject({ method: 'DELETE', url: `/api/v1/transaction/${warm.id}` });
      expect(deleted.statusCode).toBe(200);
      ids.shift();
      await expectFreshIn(b, user, {
        ids,
        count: ids.length,
        byId: { id: warm.id, version: null },
      });
      expect(await primaryReads(b)).toBeGreaterThan(primaryBefore);
      expect(await counter(b, 'fido_db_read_fallbacks_total{reason="paused"}')).toBeGreaterThan(0);
      const ready = await b.inject('/readyz');
      expect(ready.statusCode).toBe(200);
      expect(ready.json<{ checks: Record<string, string> }>().checks).toMatchObject({
        database: 'ok',
        read_replicas: 'degraded',
        replica_1: 'paused',
      });
    } finally {
      await pair.onReplica('select pg_wal_replay_resume()');
    }
    await pair.caughtUp();
    await expectFreshIn(b, user, { ids, count: ids.length, byId: { id: ids[0]!, version: 1 } });
    await expectReplicaServes(b, user, ids[0]!, ids.length);
  });

  it('reads a lagging replica only for users whose writes it has replayed', async () => {
    // Replay held back 3 s: the replica is up, not paused, within READ_REPLICA_MAX_LAG_MS, and
    // behind every new write. Only the users' write positions keep its reads fresh.
    const settled = uniqueUserId('settled');
    const old = await postTransaction(a, { user_id: settled });
    await pair.caughtUp();
    await expectReplicaServes(b, settled, old.id);
    await pair.onReplica(`alter system set recovery_min_apply_delay = '3s'`);
    await pair.onReplica('select pg_reload_conf()');
    try {
      const user = uniqueUserId('lagging');
      const ids: string[] = [];
      const behindBefore = await counter(b, 'fido_db_read_fallbacks_total{reason="behind"}');
      for (let i = 0; i < 3; i += 1) {
        const created = await postTransaction(a, { user_id: user });
        ids.push(created.id);
        await expectFreshIn(b, user, {
          ids,
          count: ids.length,
          byId: { id: created.id, version: 1 },
        });
      }
      expect(await counter(b, 'fido_db_read_fallbacks_total{reason="behind"}')).toBeGreaterThan(
        behindBefore,
      );
      // Meanwhile a user written before still reads from the lagging replica.
      const before = await replicaReads(b);
      const one = await b.inject(`/api/v1/transaction/${old.id}`);
      expect(one.statusCode).toBe(200);
      expect(await replicaReads(b)).toBe(before + 1);

      // An app with a tighter bound skips the replica altogether, and says so.
      const strict = await startApp({ READ_REPLICA_MAX_LAG_MS: '200' });
      await postTransaction(a);
      const checks = await eventually(
        async () => {
          const ready = await strict.inject('/readyz');
          expect(ready.statusCode).toBe(200);
          const found = ready.json<{ checks: Record<string, string> }>().checks;
          return found.replica_1 === 'lagging' ? found : undefined;
        },
        { what: 'the replica reported lagging', timeoutMs: 20_000 },
      );
      expect(checks.read_replicas).toBe('degraded');
    } finally {
      await pair.onReplica(`alter system reset recovery_min_apply_delay`);
      await pair.onReplica('select pg_reload_conf()');
    }
    await pair.caughtUp();
  });

  it('skips a replica that is down, without errors, and uses it again once it is back', async () => {
    const user = uniqueUserId('down');
    const ids = [(await postTransaction(a, { user_id: user })).id];
    await pair.stopReplica();
    try {
      for (let i = 0; i < 3; i += 1) {
        const created = await postTransaction(a, { user_id: user });
        ids.push(created.id);
        await expectFreshIn(b, user, {
          ids,
          count: ids.length,
          byId: { id: created.id, version: 1 },
        });
      }
      const ready = await b.inject('/readyz');
      expect(ready.statusCode).toBe(200);
      expect(ready.json<{ checks: Record<string, string> }>().checks).toMatchObject({
        database: 'ok',
        read_replicas: 'degraded',
        replica_1: 'down',
      });
    } finally {
      await pair.startReplica();
    }
    await pair.caughtUp();
    await expectNewUserServedByReplica(uniqueUserId('back'));
  });
});
