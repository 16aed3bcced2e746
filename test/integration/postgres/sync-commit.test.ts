import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { openDatabase, type DatabaseHandle } from '../../../src/db/client.js';
import { createLogger } from '../../../src/platform/logging.js';
import { testConfig, testKeyRing } from '../../helpers/app.js';
import { transactionBody, uniqueUserId } from '../../helpers/factories.js';
import { startStreamingPair, type StreamingPair } from '../../helpers/postgres-replica.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * Synchronous replication (synchronous_commit = remote_apply) on a real pair: with the standby's
 * replay paused, a COMMIT waits for it; when that wait ends with the connection (here the backend
 * is terminated, as a failover or a network cut would), the transaction has already committed on
 * the primary. The API must not answer as if nothing happened: 504 WRITE_OUTCOME_UNKNOWN, and a
 * retry with the same Idempotency-Key returns the write's real outcome.
 */
describe('a commit whose outcome is unknown', () => {
  let pair: StreamingPair;
  let primary: DatabaseHandle;
  let app: FastifyInstance;

  beforeAll(async () => {
    pair = await startStreamingPair();
    await pair.onPrimary(`alter system set synchronous_standby_names = '*'`);
    await pair.onPrimary(`alter system set synchronous_commit = 'remote_apply'`);
    await pair.onPrimary('select pg_reload_conf()');
    await eventually(
      async () =>
        (await pair.onPrimary(`select 1 from pg_stat_replication where sync_state = 'sync'`))
          .rowCount === 1
          ? true
          : undefined,
      { what: 'a synchronous standby', timeoutMs: 30_000 },
    );
    primary = await openDatabase({
      databaseUrl: pair.primaryUrl,
      dataDir: 'unused',
      poolSize: 10,
      statementTimeoutMs: 60_000,
      connectTimeoutMs: 2_000,
      logger: createLogger('silent'),
    });
    await primary.migrate();
    app = await buildApp(testConfig({ DATABASE_URL: pair.primaryUrl }), {
      database: primary,
      keyRing: testKeyRing(),
    });
  }, 180_000);

  afterAll(async () => {
    await pair?.onReplica('select pg_wal_replay_resume()').catch(() => undefined);
    await app?.close();
    await primary?.close();
    await pair?.stop();
  }, 60_000);

  /** Runs `send` with replay paused, cuts the connection that waits for the standby, resumes. */
  async function cutWhileWaiting<T>(send: () => Promise<T>): Promise<T> {
    await pair.onReplica('select pg_wal_replay_pause()');
    try {
      const answer = send();
      await eventually(
        async () =>
          (
            await pair.onPrimary(
              `select pg_terminate_backend(pid) from pg_stat_activity where wait_event = 'SyncRep'`,
            )
          ).rowCount === 1
            ? true
            : undefined,
        { what: 'a commit waiting for the standby', timeoutMs: 20_000 },
      );
      return await answer;
    } finally {
      await pair.onReplica('select pg_wal_replay_resume()');
    }
  }

  it('answers 504 for a create, and the Idempotency-Key retry gives the real outcome', async () => {
    const body = transactionBody({ user_id: uniqueUserId('sync') });
    const send = () =>
      app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { 'idempotency-key': `sync-${body.user_id as string}` },
        payload: body,
      });
    const first = await cutWhileWaiting(send);
    expect(first.statusCode).toBe(504);
    expect(first.json()).toMatchObject({ code: 'WRITE_OUTCOME_UNKNOWN' });

    // It had committed on the primary: the retry replays it rather than writing it again.
    const retry = await send();
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    const history = await app.inject(`/api/v1/transaction/history/${body.user_id as string}`);
    expect(history.json<{ data: unknown[] }>().data).toHaveLength(1);
  });

  it('answers 504 for a create without a key, naming the record to read', async () => {
    const body = transactionBody({ user_id: uniqueUserId('sync-nokey') });
    const first = await cutWhileWaiting(() =>
      app.inject({ method: 'POST', url: '/api/v1/transaction/', payload: body }),
    );
    expect(first.statusCode).toBe(504);
    const message = first.json<{ message: string }>().message;
    const path = /\/api\/v1\/transaction\/[0-9a-f-]{36}/.exec(message)?.[0];
    expect(path).toBeDefined();
    expect((await app.inject(path!)).statusCode).toBe(200);
  });

  it('answers 504 for an update whose COMMIT was cut, not 503', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: transactionBody({ user_id: uniqueUserId('sync-update') }),
    });
    const id = created.json<{ data: { id: string } }>().data.id;
    const updated = await cutWhileWaiting(() =>
      app.inject({
        method: 'PATCH',
        url: `/api/v1/transaction/${id}`,
        payload: { transaction_amount: 300 },
      }),
    );
    expect(updated.statusCode).toBe(504);
    expect(updated.json()).toMatchObject({ code: 'WRITE_OUTCOME_UNKNOWN' });
    const read = await app.inject(`/api/v1/transaction/${id}`);
    expect(read.json<{ data: { version: number } }>().data.version).toBe(2);
  });
});
