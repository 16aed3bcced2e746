import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventHandler } from '../../src/modules/events/handlers.js';
import type { PublishedEvent } from '../../src/modules/events/feed.js';
import { queryRows } from '../../src/db/client.js';
import { uniqueUserId } from '../helpers/factories.js';
import {
  buildTestApp,
  createTestDatabase,
  postTransaction,
  testKeyRing,
  useTestApp,
  type TestDatabase,
} from '../helpers/app.js';
import { eventually, WebhookReceiver } from '../helpers/webhook-receiver.js';

interface FeedPage {
  data: { id: string; type: string; user_id: string; transaction_id: string }[];
  pagination: { limit: number; next_cursor: string | null; has_more: boolean };
}

async function readAll(app: FastifyInstance, query: string, limit: number) {
  const seen: FeedPage['data'] = [];
  let after: string | null = null;
  for (let page = 0; page < 1_000; page += 1) {
    const url: string = `/api/v1/events?limit=${limit}${query}${after ? `&after=${after}` : ''}`;
    const response = await app.inject(url);
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json<FeedPage>();
    seen.push(...body.data);
    after = body.pagination.next_cursor;
    if (!body.pagination.has_more) return { seen, after };
  }
  throw new Error('feed did not end');
}

describe('event feed', () => {
  const ctx = useTestApp();

  it('returns every event exactly once across pages, in order per user, filtered on request', async () => {
    const users = [uniqueUserId(), uniqueUserId(), uniqueUserId()];
    const written: string[] = [];
    for (let i = 0; i < 9; i += 1) {
      const created = await postTransaction(ctx.app, { user_id: users[i % 3] });
      written.push(created.id);
      if (i % 2 === 0) {
        await ctx.app.inject({
          method: 'PATCH',
          url: `/api/v1/transaction/${created.id}`,
          payload: { description: `edit ${i}` },
        });
      }
    }
    // 9 creations and 5 updates; on a shared server, others' open transactions may hold them back.
    const { seen, after } = await eventually(async () => {
      const all = await readAll(ctx.app, '', 4);
      return all.seen.length >= 14 ? all : undefined;
    });
    const ids = seen.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(
      seen.filter((e) => e.type === 'transaction.created').map((e) => e.transaction_id),
    ).toEqual(written);
    expect(seen.filter((e) => e.type === 'transaction.updated')).toHaveLength(5);

    // A poller resumes from the last cursor and finds only what is new.
    const later = await postTransaction(ctx.app, { user_id: users[0] });
    // Served once every older transaction has ended (on a shared server, other databases' too).
    const resumed = await eventually(async () => {
      const page = (await ctx.app.inject(`/api/v1/events?after=${after}`)).json<FeedPage>();
      return page.data.length > 0 ? page.data : undefined;
    });
    expect(resumed.map((e) => e.transaction_id)).toEqual([later.id]);

    const mine = await readAll(ctx.app, `&user_id=${users[1]}`, 2);
    expect(mine.seen.every((e) => e.user_id === users[1])).toBe(true);
    expect(mine.seen.map((e) => e.id)).toEqual(
      seen.filter((e) => e.user_id === users[1]).map((e) => e.id),
    );
    const updates = await readAll(ctx.app, '&type=transaction.updated', 100);
    expect(updates.seen).toHaveLength(5);
  });

  it('refuses a malformed cursor and an unknown type', async () => {
    for (const query of [
      'after=not-a-cursor',
      'after=MTIz',
      'type=transaction.exploded',
      'limit=0',
    ]) {
      const response = await ctx.app.inject(`/api/v1/events?${query}`);
      expect(response.statusCode, query).toBe(422);
    }
  });

  it('reads the cursors it issues, and refuses the same position spelled with leading zeros', async () => {
    await postTransaction(ctx.app, { user_id: uniqueUserId() });
    const issued = await eventually(async () => {
      const page = (await ctx.app.inject('/api/v1/events?limit=1')).json<FeedPage>();
      return page.pagination.next_cursor ?? undefined;
    });
    const error = async (after: string) => {
      const response = await ctx.app.inject(`/api/v1/events?limit=1&after=${after}`);
      return { status: response.statusCode, ...response.json(), request_id: undefined };
    };
    expect((await error(issued)).status).toBe(200);
    const invalid = await error('not-a-cursor');
    expect(invalid.status).toBe(422);
    const [txId, sequence] = Buffer.from(issued, 'base64url').toString().split('.') as [
      string,
      string,
    ];
    for (const text of [`0${txId}.${sequence}`, `${txId}.${sequence.padStart(20, '0')}`]) {
      expect(await error(Buffer.from(text).toString('base64url')), text).toEqual(invalid);
    }
  });

  it('emits nothing for a write that rolls back after its event was written', async () => {
    const db = ctx.database.handle.db;
    // The idempotency row is written last in the write's transaction: failing it rolls back the
    // transaction row, the rollups and the event appended before it.
    await db.execute(sql`create function fail_idempotency() returns trigger language plpgsql as
      $$ begin raise exception 'injected failure'; end $$`);
    await db.execute(sql`create trigger fail_idempotency before insert on idempotency_keys
      for each row execute function fail_idempotency()`);
    const userId = uniqueUserId();
    try {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { 'idempotency-key': 'rollback-1' },
        payload: {
          user_id: userId,
          full_name: 'Efua',
          transaction_date: '2024-01-01',
          transaction_amount: 5,
          transaction_type: 'debit',
        },
      });
      expect(response.statusCode).toBe(500);
    } finally {
      await db.execute(sql`drop trigger fail_idempotency on idempotency_keys`);
      await db.execute(sql`drop function fail_idempotency()`);
    }
    const history = await ctx.app.inject(`/api/v1/transaction/history/${userId}`);
    expect(history.statusCode).toBe(404);
    // A later write's event shows the feed has caught up; it is the user's only event.
    const later = await postTransaction(ctx.app, { user_id: userId });
    const events = await eventually(async () => {
      const page = (await ctx.app.inject(`/api/v1/events?user_id=${userId}`)).json<FeedPage>();
      return page.data.length > 0 ? page.data : undefined;
    });
    expect(events.map((e) => e.transaction_id)).toEqual([later.id]);
  });
});

describe('event worker', () => {
  let database: TestDatabase;
  let receiver: WebhookReceiver;
  const WORKER_ENV = {
    WORKER: 'inline',
    WORKER_POLL_MS: '50',
    WEBHOOK_BACKOFF_BASE_MS: '20',
    WEBHOOK_BACKOFF_MAX_MS: '50',
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    receiver = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await receiver.close();
    await database.drop();
  });

  it('delivers, after a restart, what committed while no worker ran, with the same event id', async () => {
    // Two processes of one deployment: the same database and the same keys.
    const keyRing = testKeyRing();
    const writer = await buildTestApp(database, { env: { WORKER: 'off' }, deps: { keyRing } });
    const created = await writer.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      payload: { url: receiver.url('/restart') },
    });
    expect(created.statusCode).toBe(201);
    const transaction = await postTransaction(writer);
    const feed = await writer.inject(`/api/v1/events?user_id=${transaction.user_id}`);
    const [event] = feed.json<FeedPage>().data;
    await writer.close();
    expect(receiver.requests).toHaveLength(0);

    const worker = await buildTestApp(database, { env: WORKER_ENV, deps: { keyRing } });
    try {
      const [delivered] = await eventually(() => {
        const got = receiver.accepted('/restart');
        return got.length > 0 ? got : undefined;
      });
      expect(delivered!.headers['fido-event-id']).toBe(event!.id);
      expect(JSON.parse(delivered!.body)).toMatchObject({
        id: event!.id,
        transaction_id: transaction.id,
      });
    } finally {
      await worker.close();
    }
  });

  it('runs registered handlers in order per user; a failing user waits, holding back no one else', async () => {
    const calls: PublishedEvent[] = [];
    const stuckUser = uniqueUserId('stuck');
    let healed = false;
    const creditScore: EventHandler = {
      name: 'credit-score',
      types: ['transaction.created', 'transaction.updated'],
      async handle(event) {
        if (event.user_id === stuckUser && !healed) throw new Error('scoring service unavailable');
        calls.push(event);
      },
    };
    const app = await buildTestApp(database, {
      env: WORKER_ENV,
      deps: { eventHandlers: [creditScore] },
    });
    try {
      const stuckFirst = await postTransaction(app, { user_id: stuckUser });
      const stuckSecond = await postTransaction(app, { user_id: stuckUser });
      const userId = uniqueUserId();
      const first = await postTransaction(app, { user_id: userId, transaction_amount: 1 });
      for (const amount of [2, 3, 4]) {
        await app.inject({
          method: 'PATCH',
          url: `/api/v1/transaction/${first.id}`,
          payload: { transaction_amount: amount },
        });
      }
      await app.inject({ method: 'DELETE', url: `/api/v1/transaction/${first.id}` });

      const mine = await eventually(() => {
        const got = calls.filter((e) => e.user_id === userId);
        return got.length >= 4 ? got : undefined;
      });
      // Filtered by type (no deletion), in order, each version once.
      expect(mine.map((e) => e.data.transaction.transaction_amount)).toEqual([1, 2, 3, 4]);

      // The stuck user's first event is retried; the second waits behind it, never attempted.
      const stuck = await eventually(async () => {
        const rows = await queryRows<{ attempts: number; last_error: string | null }>(
          database.handle.db,
          sql`select attempts, last_error from deliveries
            where consumer = 'handler:credit-score' and user_id = ${stuckUser} order by position`,
        );
        return rows[0] && rows[0].attempts >= 2 ? rows : undefined;
      });
      expect(stuck[0]?.last_error).toBe('scoring service unavailable');
      expect(stuck[1]?.attempts).toBe(0);
      expect(calls.filter((e) => e.user_id === stuckUser)).toEqual([]);

      healed = true;
      const recovered = await eventually(() => {
        const got = calls.filter((e) => e.user_id === stuckUser);
        return got.length >= 2 ? got : undefined;
      });
      expect(recovered.map((e) => e.transaction_id)).toEqual([stuckFirst.id, stuckSecond.id]);
    } finally {
      await app.close();
    }
  });
});
