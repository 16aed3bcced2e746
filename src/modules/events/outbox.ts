import { sql, type SQL } from 'drizzle-orm';
import { v7 as uuidv7 } from 'uuid';
import type { DeliveryState } from '../../db/schema/index.js';
import { queryRows, type Db } from '../../db/client.js';
import { readJobState, writeJobState } from '../../db/job-state.repository.js';
import { readJetStreamPosition } from './jetstream.repository.js';
import {
  decodeFeedCursor,
  EVENT_COLUMNS,
  encodeFeedCursor,
  readFeed,
  toPublishedEvent,
  type EventRow,
  type PublishedEvent,
} from './feed.js';

/** First key of the relay's advisory lock: one relay at a time, across every process. */
const RELAY_LOCK_CLASS = 0x46_49_44_52; // "FIDR"
const RELAY_STATE_NAME = 'outbox-relay';
/**
 * Rows per statement when the relay inserts deliveries or locks streams: far below PostgreSQL's
 * bind-parameter limit. PGlite 0.5 failed ("ReleaseBuffer") on a share-lock of a few hundred
 * streams followed by an insert of a few hundred rows in one transaction, and not at this size.
 */
const INSERT_CHUNK_ROWS = 100;
/** `next_attempt_at` of a delivery waiting behind an earlier one of its (consumer, user). */
export const PARKED_UNTIL = new Date('9999-12-31T00:00:00.000Z');
const PARKED = sql`${PARKED_UNTIL.toISOString()}::timestamptz`;

export const handlerConsumer = (name: string) => `handler:${name}`;

/** True of a delivery `d` with no pending delivery before it in its (consumer, user) stream. */
const FIRST_OF_STREAM = sql`not exists (
    select 1 from deliveries e
    where e.state = 'pending' and e.consumer = d.consumer and e.user_id = d.user_id
      and e.position < d.position)`;

/** Records the handlers a worker runs, so every relay (in any process) fans events out to them. */
export async function registerHandlers(
  db: Db,
  handlers: readonly { name: string; types: readonly string[] }[],
): Promise<void> {
  if (handlers.length === 0) return;
  await db.execute(
    sql`insert into event_consumers (name, event_types) values ${sql.join(
      handlers.map((h) => sql`(${handlerConsumer(h.name)}, ${textArray(h.types)})`),
      sql`, `,
    )}
    on conflict (name) do update set event_types = excluded.event_types, last_seen_at = now()`,
  );
}

/**
 * What the worker has yet to do: committed events the relay has not fanned out, and deliveries
 * still pending (due, retrying or parked). Both zero means it has caught up with every write.
 */
export async function workerBacklog(db: Db): Promise<{ unrelayed: number; pending: number }> {
  const state = await readJobState(db, RELAY_STATE_NAME);
  const relayed = state === undefined ? undefined : decodeFeedCursor(state);
  const after = relayed
    ? sql`where (tx_id, sequence) > (${relayed.txId}::bigint, ${relayed.sequence}::bigint)`
    : sql``;
  const [row] = await queryRows<{ unrelayed: string | number; pending: string | number }>(
    db,
    sql`select (select count(*) from events ${after}) as unrelayed,
      (select count(*) from deliveries where state = 'pending') as pending`,
  );
  return { unrelayed: Number(row?.unrelayed ?? 0), pending: Number(row?.pending ?? 0) };
}

/** Takes a handler out of service: it is owed nothing more, and what it was owed is dropped. */
export async function retireHandler(db: Db, name: string): Promise<number> {
  return db.transaction(async (dbTx) => {
    const consumer = handlerConsumer(name);
    await dbTx.execute(sql`delete from event_consumers where name = ${consumer}`);
    const dropped = await queryRows<{ id: string }>(
      dbTx,
      sql`delete from deliveries where consumer = ${consumer} and state = 'pending' returning id`,
    );
    return dropped.length;
  });
}

/** A text[] literal for a bind parameter: the same on pg and PGlite. */
function textArray(values: readonly string[]): SQL {
  return sql`string_to_array(${values.join(',')}, ',')::text[]`;
}

interface Subscriber {
  consumer: string;
  webhook_id: string | null;
  event_types: string[];
  /** Events written before this are not its business: history is not replayed to it. */
  since: string | Date;
}

/**
 * Moves up to `batchSize` new events from the feed into per-consumer deliveries, and the relay's
 * cursor past them, in one transaction: a crash repeats the whole step or none of it, and the
 * unique (user, consumer, event) index makes a repeat harmless. Events go in feed order, so a
 * delivery's `position` orders one consumer's deliveries for one user. A delivery with an earlier
 * one still pending for its (consumer, user) is parked until that one completes.
 */
export async function relayEvents(
  db: Db,
  options: { batchSize: number; retryWindowMs: number },
): Promise<number> {
  return db.transaction(async (dbTx) => {
    const [lock] = await queryRows<{ locked: boolean }>(
      dbTx,
      sql`select pg_try_advisory_xact_lock(${RELAY_LOCK_CLASS}, 0) as locked`,
    );
    if (!lock?.locked) return 0;
    const state = await readJobState(dbTx, RELAY_STATE_NAME);
    const entries = await readFeed(dbTx, {
      after: state === undefined ? undefined : decodeFeedCursor(state),
      limit: options.batchSize,
    });
    const last = entries.at(-1);
    if (!last) return 0;

    const subscribers = await queryRows<Subscriber>(
      dbTx,
      sql`select name as consumer, null::uuid as webhook_id, event_types, registered_at as since
        from event_consumers
        union all
        select 'webhook:' || id, id, event_types, created_at from webhooks where active
        order by consumer`,
    );
    const planned: { event: PublishedEvent; subscriber: Subscriber; first: boolean }[] = [];
    const streams = new Map<string, { consumer: string; userId: string }>();
    const since = new Map(subscribers.map((s) => [s.consumer, new Date(s.since).getTime()]));
    for (const { event } of entries) {
      const written = Date.parse(event.created_at);
      for (const subscriber of subscribers) {
        const types = subscriber.event_types;
        if (types.length > 0 && !types.includes(event.type)) continue;
        if (written < (since.get(subscriber.consumer) ?? 0)) continue;
        const key = streamKey(subscriber.consumer, event.user_id);
        // Only the first of a stream in this batch can be due; the database knows about earlier ones.
        planned.push({ event, subscriber, first: !streams.has(key) });
        streams.set(key, { consumer: subscriber.consumer, userId: event.user_id });
      }
    }
    const waiting = await lockPendingHeads(dbTx, [...streams.values()]);
    const rows = planned.map(({ event, subscriber, first }) => {
      const due = first && !waiting.has(streamKey(subscriber.consumer, event.user_id));
      return sql`(${uuidv7()}::uuid, ${subscriber.consumer}, ${subscriber.webhook_id}::uuid,
        ${event.id}::uuid, ${event.type}, ${event.user_id}, ${due}::boolean)`;
    });
    for (let i = 0; i < rows.length; i += INSERT_CHUNK_ROWS) {
      await dbTx.execute(
        sql`insert into deliveries
            (id, consumer, webhook_id, event_id, event_type, user_id, retry_until, next_attempt_at)
          select v.id, v.consumer, v.webhook_id, v.event_id, v.event_type, v.user_id,
            now() + ${options.retryWindowMs} * interval '1 millisecond',
            case when v.due then now() else ${PARKED} end
          from (values ${sql.join(rows.slice(i, i + INSERT_CHUNK_ROWS), sql`, `)})
            as v(id, consumer, webhook_id, event_id, event_type, user_id, due)
          on conflict (user_id, consumer, event_id) do nothing`,
      );
    }
    await writeJobState(dbTx, RELAY_STATE_NAME, encodeFeedCursor(last.position));
    return entries.length;
  });
}

const streamKey = (consumer: string, userId: string) => `${consumer}\n${userId}`;

/**
 * The streams (consumer, user) that have a pending delivery, with each one's earliest locked
 * (FOR SHARE) until the relay commits. The lock is what keeps a parked delivery from being
 * stranded: the head cannot complete, and release its successor, before the successor exists.
 * A head completed while we waited is re-checked out, and its stream counts as free.
 */
async function lockPendingHeads(
  dbTx: Db,
  streams: readonly { consumer: string; userId: string }[],
): Promise<Set<string>> {
  const waiting = new Set<string>();
  for (let i = 0; i < streams.length; i += INSERT_CHUNK_ROWS) {
    const pairs = streams
      .slice(i, i + INSERT_CHUNK_ROWS)
      .map((s) => sql`(${s.consumer}, ${s.userId})`);
    const heads = await queryRows<{ consumer: string; user_id: string }>(
      dbTx,
      sql`select consumer, user_id from deliveries
        where state = 'pending' and id in (
          select distinct on (consumer, user_id) id from deliveries
          where state = 'pending' and (consumer, user_id) in (${sql.join(pairs, sql`, `)})
          order by consumer, user_id, position)
        for share`,
    );
    for (const head of heads) waiting.add(streamKey(head.consumer, head.user_id));
  }
  return waiting;
}

export interface ClaimedDelivery {
  id: string;
  consumer: string;
  webhookId: string | null;
  /** This claim's attempt number (1 for the first). */
  attempt: number;
  event: PublishedEvent;
}

/**
 * Claims up to `limit` due deliveries. Only the earliest pending delivery of each (consumer, user)
 * is eligible, so a user's events reach each consumer in order while other users' flow past a
 * failing one. A claim is a lease: the delivery stays pending with its next attempt pushed
 * `leaseMs` ahead, so if this process dies the delivery is simply attempted again later.
 */
export async function claimDeliveries(
  db: Db,
  options: { handlerConsumers: readonly string[]; limit: number; leaseMs: number },
): Promise<ClaimedDelivery[]> {
  const handlers =
    options.handlerConsumers.length > 0
      ? sql`d.consumer in (${sql.join(
          options.handlerConsumers.map((c) => sql`${c}`),
          sql`, `,
        )})`
      : sql`false`;
  const rows = await queryRows<
    EventRow & {
      delivery_id: string;
      consumer: string;
      webhook_id: string | null;
      attempts: number;
    }
  >(
    db,
    sql`with due as (
        select d.id from deliveries d
        left join webhooks w on w.id = d.webhook_id
        where d.state = 'pending' and d.next_attempt_at <= now()
          and ((d.webhook_id is null and ${handlers}) or w.active)
          and ${FIRST_OF_STREAM}
        order by d.next_attempt_at, d.position
        limit ${options.limit}
        for update of d skip locked
      ),
      claimed as (
        update deliveries d set
          attempts = d.attempts + 1,
          next_attempt_at = now() + ${options.leaseMs} * interval '1 millisecond',
          updated_at = now()
        from due where d.id = due.id
        returning d.id as delivery_id, d.consumer, d.webhook_id, d.attempts, d.event_id
      )
      select c.delivery_id, c.consumer, c.webhook_id, c.attempts, ${EVENT_COLUMNS}
      from claimed c join events on events.id = c.event_id`,
  );
  return rows.map((row) => ({
    id: row.delivery_id,
    consumer: row.consumer,
    webhookId: row.webhook_id,
    attempt: Number(row.attempts),
    event: toPublishedEvent(row),
  }));
}

/** What one attempt came to: a webhook's send result, or a handler's in the same terms. */
export interface AttemptOutcome {
  ok: boolean;
  /** The response status, or null when none arrived (refused, timed out, blocked). */
  status: number | null;
  latencyMs: number;
  error: string | null;
}

/** Longest error text kept per attempt: enough to diagnose, bounded so the log stays small. */
const ERROR_TEXT_MAX = 500;
const clip = (error: string | null) => (error === null ? null : error.slice(0, ERROR_TEXT_MAX));

/**
 * Records an automatic attempt. Success completes the delivery; a failure schedules the next
 * attempt `retryDelayMs` later (never past `retry_until`), or marks it dead once a failure
 * happens at or after `retry_until`. Only the claim that is still current may change the state:
 * a worker that outlived its lease just adds its attempt to the log. A completed delivery
 * releases the next one of its (consumer, user).
 */
export async function recordAttempt(
  db: Db,
  delivery: Pick<ClaimedDelivery, 'id' | 'attempt'>,
  outcome: AttemptOutcome,
  retryDelayMs: number,
): Promise<DeliveryState | 'superseded' | 'gone'> {
  return db.transaction(async (dbTx) => {
    if (!(await holdDelivery(dbTx, delivery.id))) return 'gone';
    await insertAttempt(dbTx, delivery.id, outcome, false);
    const current = sql`id = ${delivery.id} and state = 'pending' and attempts = ${delivery.attempt}`;
    const [row] = await queryRows<{ state: DeliveryState; consumer: string; user_id: string }>(
      dbTx,
      outcome.ok
        ? sql`update deliveries set state = 'succeeded', completed_at = now(), updated_at = now(),
            last_status = ${outcome.status}, last_error = null
          where ${current} returning state, consumer, user_id`
        : sql`update deliveries set
            state = case when now() >= retry_until then 'dead' else 'pending' end,
            completed_at = case when now() >= retry_until then now() end,
            next_attempt_at = least(now() + ${retryDelayMs} * interval '1 millisecond', retry_until),
            last_status = ${outcome.status}, last_error = ${clip(outcome.error)}, updated_at = now()
          where ${current} returning state, consumer, user_id`,
    );
    if (!row) return 'superseded';
    if (row.state !== 'pending') await releaseNext(dbTx, row.consumer, row.user_id);
    return row.state;
  });
}

/**
 * Records a manual attempt: success completes the delivery, failure changes nothing but the log.
 * False when the delivery no longer exists (its webhook was deleted while the attempt was made).
 */
export async function recordManualAttempt(
  db: Db,
  deliveryId: string,
  outcome: AttemptOutcome,
): Promise<boolean> {
  return db.transaction(async (dbTx) => {
    if (!(await holdDelivery(dbTx, deliveryId))) return false;
    await insertAttempt(dbTx, deliveryId, outcome, true);
    if (!outcome.ok) {
      await dbTx.execute(
        sql`update deliveries set last_status = ${outcome.status},
          last_error = ${clip(outcome.error)}, updated_at = now() where id = ${deliveryId}`,
      );
      return true;
    }
    const [completed] = await queryRows<{ consumer: string; user_id: string; was: DeliveryState }>(
      dbTx,
      sql`update deliveries d set state = 'succeeded', completed_at = now(), updated_at = now(),
          last_status = ${outcome.status}, last_error = null
        from deliveries before where before.id = d.id and d.id = ${deliveryId}
        returning d.consumer, d.user_id, before.state as was`,
    );
    if (completed?.was === 'pending')
      await releaseNext(dbTx, completed.consumer, completed.user_id);
    return true;
  });
}

/**
 * Whether the delivery still exists, holding it until `dbTx` ends: deleting its webhook (which
 * deletes the delivery) waits for the attempt to be recorded, or has already happened, so an
 * attempt is never logged against a delivery that is gone (a foreign-key violation, 23503).
 */
async function holdDelivery(dbTx: Db, deliveryId: string): Promise<boolean> {
  const rows = await queryRows<{ id: string }>(
    dbTx,
    sql`select id from deliveries where id = ${deliveryId} for key share`,
  );
  return rows.length > 0;
}

/** Makes the next parked delivery of a (consumer, user) due now. */
async function releaseNext(dbTx: Db, consumer: string, userId: string): Promise<void> {
  await dbTx.execute(
    sql`update deliveries set next_attempt_at = now() where id = (
        select id from deliveries
        where state = 'pending' and consumer = ${consumer} and user_id = ${userId}
        order by position limit 1)
      and next_attempt_at = ${PARKED}`,
  );
}

/**
 * Releases parked deliveries with nothing pending before them. Completions release their
 * successor themselves; this catches the one that was relayed while its predecessor completed.
 */
export async function releaseStranded(db: Db, batchSize: number): Promise<number> {
  const rows = await queryRows<{ id: string }>(
    db,
    sql`update deliveries set next_attempt_at = now() where id in (
        select d.id from deliveries d
        where d.state = 'pending' and d.next_attempt_at = ${PARKED}
          and ${FIRST_OF_STREAM}
        limit ${batchSize})
      returning id`,
  );
  return rows.length;
}

async function insertAttempt(
  dbTx: Db,
  deliveryId: string,
  outcome: AttemptOutcome,
  manual: boolean,
): Promise<void> {
  await dbTx.execute(
    // The attempt takes its delivery's user_id: the pair is the foreign key that co-locates them.
    sql`insert into delivery_attempts (user_id, delivery_id, status_code, latency_ms, error, manual)
      select user_id, id, ${outcome.status}, ${outcome.latencyMs}, ${clip(outcome.error)}, ${manual}
      from deliveries where id = ${deliveryId}`,
  );
}

export async function loadEvent(db: Db, eventId: string): Promise<PublishedEvent | undefined> {
  const [row] = await queryRows<EventRow>(
    db,
    sql`select ${EVENT_COLUMNS} from events where id = ${eventId}`,
  );
  return row && toPublishedEvent(row);
}

/** How long after its retry window an unattempted delivery (paused webhook, stopped handler) dies. */
const EXPIRY_GRACE = sql`interval '1 hour'`;

/**
 * Upkeep, in batches of `batchSize` until `deadline`:
 * - pending deliveries an hour past their retry window (their webhook was paused, or no worker
 *   runs their handler) are marked dead, so they stop holding back their user's later ones;
 * - completed deliveries (with their attempts) past the retention window are deleted;
 * - events past the retention window that the relay has passed and no consumer still owes are
 *   deleted (with JetStream on, only once they are in the stream).
 */
export async function pruneEvents(
  db: Db,
  options: {
    retentionDays: number;
    batchSize: number;
    deadline: number;
    /** NATS_URL is set: events not yet in the JetStream stream are kept. */
    jetstream?: boolean;
  },
): Promise<{ expired: number; deliveries: number; events: number }> {
  const cutoff = sql`now() - ${options.retentionDays} * interval '1 day'`;
  const batches = async (statement: SQL): Promise<number> => {
    let total = 0;
    while (Date.now() < options.deadline) {
      const rows = await queryRows<{ n: number | string }>(db, statement);
      const n = Number(rows[0]?.n ?? 0);
      total += n;
      if (n < options.batchSize) break;
    }
    return total;
  };
  const expired = await batches(
    sql`with gone as (
        update deliveries set state = 'dead', completed_at = now(), updated_at = now(),
          last_error = 'Expired without a successful attempt (webhook paused or handler not running)'
        where id in (
          select id from deliveries where state = 'pending' and retry_until < now() - ${EXPIRY_GRACE}
          limit ${options.batchSize})
        returning 1)
      select count(*) as n from gone`,
  );
  if (expired > 0) await releaseStranded(db, options.batchSize);
  const deliveries = await batches(
    sql`with gone as (
        delete from deliveries where id in (
          select id from deliveries where state <> 'pending' and completed_at < ${cutoff}
          limit ${options.batchSize})
        returning 1)
      select count(*) as n from gone`,
  );
  const state = await readJobState(db, RELAY_STATE_NAME);
  const relayed = state === undefined ? undefined : decodeFeedCursor(state);
  // With JetStream on, an event stays until the stream has it too (its relay may be behind).
  const published = options.jetstream ? await readJetStreamPosition(db) : undefined;
  const inStream = published
    ? sql`and (e.tx_id, e.sequence) <= (${published.txId}::bigint, ${published.sequence}::bigint)`
    : sql``;
  const events =
    relayed && (!options.jetstream || published)
      ? await batches(
          sql`with gone as (
          delete from events where (user_id, sequence) in (
            select e.user_id, e.sequence from events e
            where e.created_at < ${cutoff}
              and (e.tx_id, e.sequence) <= (${relayed.txId}::bigint, ${relayed.sequence}::bigint)
              ${inStream}
              and not exists (
                select 1 from deliveries d where d.state = 'pending' and d.event_id = e.id)
            limit ${options.batchSize})
          returning 1)
        select count(*) as n from gone`,
        )
      : 0;
  return { expired, deliveries, events };
}
