import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, queryRows, type Db } from '../../src/db/client.js';
import { createLogger } from '../../src/platform/logging.js';
import { recordAttempts, relayEvents } from '../../src/modules/events/outbox.js';
import {
  claimDeliveries,
  PARKED_UNTIL,
  type ClaimedDelivery,
} from '../../src/modules/events/outbox.repository.js';
import { findWebhook, webhookFromJson } from '../../src/modules/webhooks/webhooks.repository.js';
import {
  buildTestApp,
  createTestDatabase,
  postTransaction,
  type TestDatabase,
} from '../helpers/app.js';
import { uniqueUserId } from '../helpers/factories.js';

const RETRY_WINDOW_MS = 3_600_000;
const LEASE_MS = 60_000;

describe('the outbox records a batch of attempts at once', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('writes no delivery for an event nobody is configured to receive', async () => {
    const db = database.handle.db;
    const app = await buildTestApp(database, { env: { WORKER: 'off' } });
    try {
      await postTransaction(app, { user_id: 'nobody-listens' });
      expect(await relayEvents(db, { batchSize: 100, retryWindowMs: RETRY_WINDOW_MS })).toBe(1);
      const [row] = await queryRows<{ n: number | string }>(
        db,
        sql`select count(*) as n from deliveries`,
      );
      expect(Number(row?.n)).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('completes, retries, kills, supersedes and drops in one call, and releases what waited', async () => {
    const db = database.handle.db;
    const app = await buildTestApp(database, { env: { WORKER: 'off' } });
    try {
      // Nothing listens there: no attempt is made in this test, only recorded.
      const created = await app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        payload: { url: 'http://127.0.0.1:9/batch' },
      });
      expect(created.statusCode).toBe(201);
      for (const user of ['batch-a', 'batch-a', 'batch-b', 'batch-c', 'batch-d', 'batch-e']) {
        await postTransaction(app, { user_id: user });
      }
      expect(await relayEvents(db, { batchSize: 100, retryWindowMs: RETRY_WINDOW_MS })).toBe(6);
      const claim = () =>
        claimDeliveries(db, { handlerConsumers: [], limit: 100, leaseMs: LEASE_MS });
      const claimed = await claim();
      // batch-a's second event waits behind its first.
      expect(claimed.map((c) => c.event.user_id).sort()).toEqual([
        'batch-a',
        'batch-b',
        'batch-c',
        'batch-d',
        'batch-e',
      ]);
      const of = (user: string) => claimed.find((c) => c.event.user_id === user)!;
      const delivery = (c: ClaimedDelivery, attempt = c.attempt) => ({
        id: c.id,
        attempt,
        userId: c.event.user_id,
      });
      const ok = { ok: true, status: 204, latencyMs: 3, error: null };
      const failed = { ok: false, status: 500, latencyMs: 4, error: 'HTTP 500' };
      // batch-c's retry window is over; batch-e's delivery is deleted (as with its webhook).
      await db.execute(sql`update deliveries set retry_until = now() - interval '1 second'
        where id = ${of('batch-c').id}`);
      await db.execute(sql`delete from deliveries where id = ${of('batch-e').id}`);

      const states = await recordAttempts(db, [
        { delivery: delivery(of('batch-a')), outcome: ok, retryDelayMs: 1_000 },
        { delivery: delivery(of('batch-b')), outcome: failed, retryDelayMs: 600_000 },
        { delivery: delivery(of('batch-c')), outcome: failed, retryDelayMs: 1_000 },
        // A claim that is no longer current: its attempt is logged, the state is not touched.
        {
          delivery: delivery(of('batch-d'), of('batch-d').attempt - 1),
          outcome: ok,
          retryDelayMs: 1_000,
        },
        { delivery: delivery(of('batch-e')), outcome: ok, retryDelayMs: 1_000 },
      ]);
      expect(states).toEqual(['succeeded', 'pending', 'dead', 'superseded', 'gone']);

      const rows = await queryRows<{
        user_id: string;
        state: string;
        last_status: number | null;
        last_error: string | null;
        parked: boolean;
        attempts_logged: number | string;
      }>(
        db,
        sql`select d.user_id, d.state, d.last_status, d.last_error,
            d.next_attempt_at = ${PARKED_UNTIL.toISOString()}::timestamptz as parked,
            (select count(*) from delivery_attempts a where a.delivery_id = d.id) as attempts_logged
          from deliveries d order by d.position`,
      );
      expect(rows.map((r) => ({ ...r, attempts_logged: Number(r.attempts_logged) }))).toEqual([
        {
          user_id: 'batch-a',
          state: 'succeeded',
          last_status: 204,
          last_error: null,
          parked: false,
          attempts_logged: 1,
        },
        // Released by its predecessor's success.
        {
          user_id: 'batch-a',
          state: 'pending',
          last_status: null,
          last_error: null,
          parked: false,
          attempts_logged: 0,
        },
        {
          user_id: 'batch-b',
          state: 'pending',
          last_status: 500,
          last_error: 'HTTP 500',
          parked: false,
          attempts_logged: 1,
        },
        {
          user_id: 'batch-c',
          state: 'dead',
          last_status: 500,
          last_error: 'HTTP 500',
          parked: false,
          attempts_logged: 1,
        },
        {
          user_id: 'batch-d',
          state: 'pending',
          last_status: null,
          last_error: null,
          parked: false,
          attempts_logged: 1,
        },
      ]);
      // Due now: batch-a's second event only (batch-b retries in ten minutes, batch-d is leased).
      expect((await claim()).map((c) => c.event.user_id)).toEqual(['batch-a']);
    } finally {
      await app.close();
    }
  });

  it('reads the webhook with the claim: the row the sender gets is the stored one', async () => {
    const db = database.handle.db;
    const app = await buildTestApp(database, { env: { WORKER: 'off' } });
    try {
      const created = await app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        payload: { url: 'http://127.0.0.1:9/claimed', event_types: ['transaction.created'] },
      });
      expect(created.statusCode).toBe(201);
      const id = created.json<{ data: { id: string } }>().data.id;
      // A previous secret and its expiry: every column the sender reads holds a value.
      const rotated = await app.inject({
        method: 'POST',
        url: `/api/v1/webhooks/${id}/rotate-secret`,
        payload: { overlap_hours: 2 },
      });
      expect(rotated.statusCode).toBe(200);
      await postTransaction(app, { user_id: 'claimed-webhook' });
      await relayEvents(db, { batchSize: 100, retryWindowMs: RETRY_WINDOW_MS });
      // The earlier test's webhook takes every event too: this one's delivery is the one here.
      const claimed = (
        await claimDeliveries(db, { handlerConsumers: [], limit: 100, leaseMs: LEASE_MS })
      ).find((c) => c.webhookId === id);
      expect(claimed).toBeDefined();
      const stored = await findWebhook(db, id);
      expect(stored?.previousSecretExpiresAt).toBeInstanceOf(Date);
      expect(webhookFromJson(claimed!.webhook!)).toEqual(stored);
    } finally {
      await app.close();
    }
  });
  /*
   * The statement that records attempts both locks the deliveries and updates them. Whichever
   * join PostgreSQL plans, every attempt at a delivery that exists is logged: once, under a
   * nested-loop plan, the update ran first and the lock skipped the rows it had changed, so
   * deliveries succeeded with no attempt logged and were reported as deleted.
   */
  it.each([
    ['its own choice', []],
    ['nested loops only', ['enable_hashjoin', 'enable_mergejoin']],
    ['hash joins only', ['enable_nestloop', 'enable_mergejoin']],
    ['merge joins only', ['enable_nestloop', 'enable_hashjoin']],
  ])('logs every attempt of a batch whatever join is planned: %s', async (plan, disabled) => {
    const settings = disabled.map((name) => `${name}=off`);
    // PostgreSQL: a one-connection pool whose session has the settings. PGlite: its one session.
    const handle = database.url
      ? await openDatabase({
          databaseUrl: `${database.url}?options=${encodeURIComponent(settings.map((s) => `-c ${s}`).join(' '))}`,
          dataDir: 'unused',
          poolSize: 1,
          statementTimeoutMs: 10_000,
          connectTimeoutMs: 2_000,
          logger: createLogger('silent'),
        })
      : undefined;
    const db: Db = handle?.db ?? database.handle.db;
    try {
      if (!handle) for (const setting of settings) await db.execute(sql.raw(`set ${setting}`));
      // The session plans as asked: each disabled join method reads off.
      for (const name of disabled) {
        const [shown] = await queryRows<Record<string, string>>(db, sql.raw(`show ${name}`));
        expect(shown?.[name]).toBe('off');
      }

      // Which rows a wrong order skips depends on where the random ids fall: several batches,
      // so that a plan that gets it wrong cannot pass by luck.
      for (let round = 0; round < 5; round += 1) {
        const prefix = uniqueUserId(plan.split(' ')[0]);
        const inserted = await queryRows<{ id: string; user_id: string; attempts: number }>(
          db,
          sql`insert into deliveries (id, consumer, event_id, event_type, user_id, attempts,
              next_attempt_at, retry_until)
            select gen_random_uuid(), 'handler:plan', gen_random_uuid(), 'transaction.created',
              ${prefix} || '-' || (g % 8), 1, now(), now() + interval '1 hour'
            from generate_series(1, 40) as g
            returning id, user_id, attempts`,
        );
        const ok = { ok: true, status: 204, latencyMs: 2, error: null };
        const states = await recordAttempts(
          db,
          inserted.map((row) => ({
            delivery: { id: row.id, userId: row.user_id, attempt: row.attempts },
            outcome: ok,
            retryDelayMs: 1_000,
          })),
        );
        expect(states).toEqual(inserted.map(() => 'succeeded'));
        const logged = await queryRows<{ n: number | string }>(
          db,
          sql`select count(*) as n from delivery_attempts a join deliveries d
            on d.user_id = a.user_id and d.id = a.delivery_id
            where d.user_id like ${`${prefix}-%`}`,
        );
        expect(Number(logged[0]?.n)).toBe(inserted.length);
      }
    } finally {
      if (handle) await handle.close();
      else await db.execute(sql`reset all`);
    }
  });
});
