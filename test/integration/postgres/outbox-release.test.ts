import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../../src/db/client.js';
import { PARKED_UNTIL } from '../../../src/modules/events/index.js';
import { recordClaimAttempts } from '../../../src/modules/events/outbox.repository.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { uniqueUserId } from '../../helpers/factories.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * A (consumer, user) stream delivers one delivery at a time: the next waits, parked, until the one
 * before it completes, and the completion makes it due. The relay may park that successor while
 * the completion waits for the head the relay holds; the completion must still release it, at
 * once, not a sweep later.
 */
describe('completing the head of a stream while the relay parks its successor', () => {
  let database: TestDatabase;
  let relay: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    relay = new pg.Client({ connectionString: database.url });
    await relay.connect();
  });

  afterAll(async () => {
    await relay?.end();
    await database?.drop();
  });

  const insertDelivery = (client: pg.Client, userId: string, nextAttemptAt: string) =>
    client
      .query<{ id: string }>(
        `insert into deliveries (id, consumer, event_id, event_type, user_id, attempts,
           next_attempt_at, retry_until)
         values ($1, 'handler:test', $2, 'transaction.created', $3, 1, $4, now() + interval '1 hour')
         returning id`,
        [randomUUID(), randomUUID(), userId, nextAttemptAt],
      )
      .then((result) => result.rows[0]!.id);

  it('makes the parked successor due', async () => {
    const user = uniqueUserId('stream');
    const head = await insertDelivery(relay, user, new Date().toISOString());

    // The relay's step: hold the stream's head, park the successor behind it.
    await relay.query('begin');
    await relay.query('select 1 from deliveries where id = $1 for share', [head]);
    const next = await insertDelivery(relay, user, PARKED_UNTIL.toISOString());

    const recorded = recordClaimAttempts(database.handle.db, [
      {
        deliveryId: head,
        userId: user,
        attempt: 1,
        ok: true,
        status: 200,
        latencyMs: 1,
        error: null,
        retryDelayMs: 0,
      },
    ]);
    // The completion waits for the relay's lock on the head; then the relay commits.
    await eventually(
      async () => {
        const [row] = await queryRows<{ waiting: number }>(
          database.handle.db,
          // A raw catalog read: which sessions of this database wait for a lock.
          sql`select count(*)::int as waiting from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'`,
        );
        return row!.waiting > 0 ? true : undefined;
      },
      { what: 'the completion waiting for the head', timeoutMs: 30_000 },
    );
    await relay.query('commit');

    expect(await recorded).toEqual([{ held: true, state: 'succeeded' }]);
    const { rows } = await relay.query<{ parked: boolean }>(
      'select next_attempt_at = $2::timestamptz as parked from deliveries where id = $1',
      [next, PARKED_UNTIL.toISOString()],
    );
    expect(rows).toEqual([{ parked: false }]);
  });
});
