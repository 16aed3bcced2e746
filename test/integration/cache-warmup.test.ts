import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventHandler } from '../../src/modules/events/handlers.js';
import { queryRows } from '../../src/db/client.js';
import { uniqueUserId } from '../helpers/factories.js';
import {
  buildTestApp,
  createTestDatabase,
  postTransaction,
  type TestDatabase,
} from '../helpers/app.js';
import { eventually } from '../helpers/webhook-receiver.js';

/*
 * The built-in cache warm-up (CACHE_WARMUP): off by default, because it recomputed a user's first
 * history page and analytics after every change, at about twice the create's own CPU, for reads
 * that may never come. Off means no work and no delivery rows at all; on, it does what it says.
 */

const WORKER_ENV = { WORKER: 'inline', WORKER_POLL_MS: '50' };

/** A metric's value summed over its series, or over those whose `kind` label is `kind`. */
async function metric(app: FastifyInstance, name: string, kind?: string): Promise<number> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  let total = 0;
  for (const line of response.body.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    if (kind !== undefined && !match[2]?.includes(`kind="${kind}"`)) continue;
    total += Number(match[3]);
  }
  return total;
}

/** An in-process handler that records what reached it: once it has, the relay fanned the event out. */
function probe(): { handler: EventHandler; seen: Set<string> } {
  const seen = new Set<string>();
  return {
    seen,
    handler: {
      name: 'probe',
      async handle(event) {
        seen.add(event.transaction_id);
      },
    },
  };
}

describe('cache warm-up', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  const deliveriesOf = (consumer: string, userId: string) =>
    queryRows<{ state: string }>(
      database.handle.db,
      sql`select state from deliveries where consumer = ${consumer} and user_id = ${userId}`,
    );

  it('is off by default: nothing is owed to it, and a database that ran it stops owing it', async () => {
    // A database the warm-up ran on before (it was on by default), with a delivery still owed.
    await database.handle.db.execute(
      sql`insert into event_consumers (name, event_types) values ('handler:cache-warmup', '{}')`,
    );
    const { handler, seen } = probe();
    const app = await buildTestApp(database, {
      env: WORKER_ENV,
      deps: { eventHandlers: [handler] },
    });
    try {
      await app.ready();
      const consumers = await queryRows<{ name: string }>(
        database.handle.db,
        sql`select name from event_consumers order by name`,
      );
      expect(consumers.map((c) => c.name)).toEqual(['handler:probe']);

      const userId = uniqueUserId();
      const created = await postTransaction(app, { user_id: userId });
      await eventually(() => (seen.has(created.id) ? true : undefined), { timeoutMs: 30_000 });
      expect(await deliveriesOf('handler:cache-warmup', userId)).toEqual([]);
      // The handler has run; its outcome is recorded just after.
      const probed = await eventually(async () => {
        const rows = await deliveriesOf('handler:probe', userId);
        return rows.some((row) => row.state === 'pending') ? undefined : rows;
      });
      expect(probed).toEqual([{ state: 'succeeded' }]);
    } finally {
      await app.close();
    }
  });

  it('reports its backlog in /metrics until it has caught up', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: EventHandler = { name: 'slow', handle: () => gate };
    // A database of its own: handlers other tests registered would be owed these events too.
    const own = await createTestDatabase();
    const app = await buildTestApp(own, {
      env: { ...WORKER_ENV, WEBHOOK_TIMEOUT_MS: '60000' },
      deps: { eventHandlers: [slow] },
    });
    try {
      await app.ready();
      const userId = uniqueUserId();
      for (let i = 0; i < 3; i += 1) await postTransaction(app, { user_id: userId });
      // Relayed, and owed to the held-up handler: one running, two parked behind it.
      await eventually(
        async () => {
          const relayed = (await metric(app, 'fido_worker_backlog', 'unrelayed_events')) === 0;
          const pending = await metric(app, 'fido_worker_backlog', 'pending_deliveries');
          return relayed && pending === 3 ? true : undefined;
        },
        { timeoutMs: 30_000, what: 'a backlog of 3 pending deliveries' },
      );
      release();
      await eventually(
        async () =>
          (await metric(app, 'fido_worker_backlog', 'pending_deliveries')) === 0 ? true : undefined,
        { timeoutMs: 30_000, what: 'an empty backlog' },
      );
    } finally {
      release();
      await app.close();
      await own.drop();
    }
  }, 90_000);

  it('when on, the first read after a write is already a cache hit', async () => {
    const app = await buildTestApp(database, { env: { ...WORKER_ENV, CACHE_WARMUP: 'on' } });
    try {
      await app.ready();
      const userId = uniqueUserId();
      await postTransaction(app, { user_id: userId, currency: 'GHS' });
      await eventually(
        async () => {
          const rows = await deliveriesOf('handler:cache-warmup', userId);
          return rows.length === 1 && rows[0]?.state === 'succeeded' ? true : undefined;
        },
        { timeoutMs: 30_000 },
      );
      const hits = await metric(app, 'fido_cache_hits_total');
      const history = await app.inject(`/api/v1/transaction/history/${userId}`);
      expect(history.statusCode).toBe(200);
      const analytics = await app.inject(`/api/v1/analytics/${userId}?currency=GHS`);
      expect(analytics.statusCode).toBe(200);
      expect(await metric(app, 'fido_cache_hits_total')).toBe(hits + 2);
    } finally {
      await app.close();
    }
  });
});
