import { sql, type SQL } from 'drizzle-orm';
import { v7 as uuidv7 } from 'uuid';
import type { DeliveryState, EventType } from '../../db/schema/index.js';
import { queryRows, type Db } from '../../platform/db.js';
import {
  decodeFeedCursor,
  encodeFeedCursor,
  readFeed,
  type EventData,
  type PublishedEvent,
} from './feed.js';

/** First key of the relay's advisory lock: one relay at a time, across every process. */
const RELAY_LOCK_CLASS = 0x46_49_44_52; // "FIDR"
const RELAY_STATE_NAME = 'outbox-relay';
/** Delivery rows per INSERT: far below PostgreSQL's bind-parameter limit. */
const INSERT_CHUNK_ROWS = 1_000;

/** A consumer the relay owes each matching event to. */
export interface Subscriber {
  consumer: string;
  webhookId: string | null;
  /** Event types it wants; empty means all. */
  types: readonly string[];
}

export const handlerConsumer = (name: string) => `handler:${name}`;
export const webhookConsumer = (id: string) => `webhook:${id}`;

/**
 * Moves up to `batchSize` new events from the feed into per-consumer deliveries, and the relay's
 * cursor past them, in one transaction: a crash repeats the whole step or none of it, and the
 * unique (consumer, event) index makes a repeat harmless. Events go in feed order, so a
 * delivery's `position` orders one consumer's deliveries for one user.
 */
export async function relayEvents(
  db: Db,
  handlers: readonly Omit<Subscriber, 'webhookId'>[],
  batchSize: number,
): Promise<number> {
  return db.transaction(async (dbTx) => {
    const [lock] = await queryRows<{ locked: boolean }>(
      dbTx,
      sql`select pg_try_advisory_xact_lock(${RELAY_LOCK_CLASS}, 0) as locked`,
    );
    if (!lock?.locked) return 0;
    const [state] = await queryRows<{ value: string }>(
      dbTx,
      sql`select value from job_state where name = ${RELAY_STATE_NAME}`,
    );
    const entries = await readFeed(dbTx, {
      after: state ? decodeFeedCursor(state.value) : undefined,
      limit: batchSize,
    });
    const last = entries.at(-1);
    if (!last) return 0;

    const hooks = await queryRows<{ id: string; event_types: string[] | string }>(
      dbTx,
      sql`select id, event_types from webhooks where active order by id`,
    );
    const subscribers: Subscriber[] = [
      ...handlers.map((h) => ({ ...h, webhookId: null })),
      ...hooks.map((h) => ({
        consumer: webhookConsumer(h.id),
        webhookId: h.id,
        types: parseTextArray(h.event_types),
      })),
    ];
    const rows: SQL[] = [];
    for (const { event } of entries) {
      for (const s of subscribers) {
        if (s.types.length > 0 && !s.types.includes(event.type)) continue;
        rows.push(
          sql`(${uuidv7()}::uuid, ${s.consumer}, ${s.webhookId}::uuid, ${event.id}::uuid, ${event.type}, ${event.user_id})`,
        );
      }
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK_ROWS) {
      await dbTx.execute(
        sql`insert into deliveries (id, consumer, webhook_id, event_id, event_type, user_id)
          values ${sql.join(rows.slice(i, i + INSERT_CHUNK_ROWS), sql`, `)}
          on conflict (consumer, event_id) do nothing`,
      );
    }
    await dbTx.execute(
      sql`insert into job_state (name, value, updated_at)
        values (${RELAY_STATE_NAME}, ${encodeFeedCursor(last.position)}, now())
        on conflict (name) do update set value = excluded.value, updated_at = excluded.updated_at`,
    );
    return entries.length;
  });
}

/** PGlite hands text[] back as an array, pg too; a literal `{a,b}` is handled for safety. */
function parseTextArray(value: string[] | string): string[] {
  if (Array.isArray(value)) return value;
  const inner = value.replace(/^\{|\}$/g, '');
  return inner === '' ? [] : inner.split(',');
}

export interface ClaimedDelivery {
  id: string;
  consumer: string;
  webhookId: string | null;
  /** This claim's attempt number (1 for the first). */
  attempt: number;
  event: PublishedEvent;
}

interface ClaimedRow {
  id: string;
  consumer: string;
  webhook_id: string | null;
  attempts: number;
  event_id: string;
  event_type: EventType;
  user_id: string;
  transaction_id: string;
  event_created_at: string | Date;
  payload: EventData;
}

/**
 * Claims up to `limit` due deliveries. Only the earliest pending delivery of each (consumer, user)
 * is eligible, so a user's events reach each consumer in order while other users' flow past a
 * failing one. A claim is a lease: the delivery stays pending with its next attempt pushed
 * `leaseMs` ahead, so if this process dies the delivery is simply attempted again later.
 */
export async function claimDeliveries(
  db: Db,
  options: {
    handlerConsumers: readonly string[];
    limit: number;
    leaseMs: number;
    retryWindowMs: number;
  },
): Promise<ClaimedDelivery[]> {
  const handlers =
    options.handlerConsumers.length > 0
      ? sql`d.consumer in (${sql.join(
          options.handlerConsumers.map((c) => sql`${c}`),
          sql`, `,
        )})`
      : sql`false`;
  const rows = await queryRows<ClaimedRow>(
    db,
    sql`with due as (
        select d.id from deliveries d
        left join webhooks w on w.id = d.webhook_id
        where d.state = 'pending' and d.next_attempt_at <= now()
          and ((d.webhook_id is null and ${handlers}) or w.active)
          and not exists (
            select 1 from deliveries e
            where e.state = 'pending' and e.consumer = d.consumer and e.user_id = d.user_id
              and e.position < d.position)
        order by d.next_attempt_at, d.position
        limit ${options.limit}
        for update of d skip locked
      )
      update deliveries d set
        attempts = d.attempts + 1,
        next_attempt_at = now() + ${options.leaseMs} * interval '1 millisecond',
        retry_until = coalesce(d.retry_until, now() + ${options.retryWindowMs} * interval '1 millisecond'),
        updated_at = now()
      from due, events ev
      where d.id = due.id and ev.id = d.event_id
      returning d.id, d.consumer, d.webhook_id, d.attempts, d.event_id, d.event_type, d.user_id,
        ev.transaction_id, ev.created_at as event_created_at, ev.payload`,
  );
  return rows.map((row) => ({
    id: row.id,
    consumer: row.consumer,
    webhookId: row.webhook_id,
    attempt: Number(row.attempts),
    event: {
      id: row.event_id,
      type: row.event_type,
      user_id: row.user_id,
      transaction_id: row.transaction_id,
      created_at: new Date(row.event_created_at).toISOString(),
      data: row.payload,
    },
  }));
}

export interface AttemptOutcome {
  ok: boolean;
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
 * a worker that outlived its lease just adds its attempt to the log.
 */
export async function recordAttempt(
  db: Db,
  delivery: Pick<ClaimedDelivery, 'id' | 'attempt'>,
  outcome: AttemptOutcome,
  retryDelayMs: number,
): Promise<DeliveryState | 'superseded'> {
  return db.transaction(async (dbTx) => {
    await insertAttempt(dbTx, delivery.id, outcome, false);
    const current = sql`id = ${delivery.id} and state = 'pending' and attempts = ${delivery.attempt}`;
    const [row] = await queryRows<{ state: DeliveryState }>(
      dbTx,
      outcome.ok
        ? sql`update deliveries set state = 'succeeded', completed_at = now(), updated_at = now(),
            last_status = ${outcome.status}, last_error = null where ${current} returning state`
        : sql`update deliveries set
            state = case when now() >= retry_until then 'dead' else 'pending' end,
            completed_at = case when now() >= retry_until then now() end,
            next_attempt_at = least(now() + ${retryDelayMs} * interval '1 millisecond', retry_until),
            last_status = ${outcome.status}, last_error = ${clip(outcome.error)}, updated_at = now()
          where ${current} returning state`,
    );
    return row?.state ?? 'superseded';
  });
}

/** Records a manual attempt: success completes the delivery, failure changes nothing but the log. */
export async function recordManualAttempt(
  db: Db,
  deliveryId: string,
  outcome: AttemptOutcome,
): Promise<void> {
  await db.transaction(async (dbTx) => {
    await insertAttempt(dbTx, deliveryId, outcome, true);
    await dbTx.execute(
      outcome.ok
        ? sql`update deliveries set state = 'succeeded', completed_at = now(), updated_at = now(),
            last_status = ${outcome.status}, last_error = null where id = ${deliveryId}`
        : sql`update deliveries set last_status = ${outcome.status},
            last_error = ${clip(outcome.error)}, updated_at = now() where id = ${deliveryId}`,
    );
  });
}

async function insertAttempt(
  dbTx: Db,
  deliveryId: string,
  outcome: AttemptOutcome,
  manual: boolean,
): Promise<void> {
  await dbTx.execute(
    sql`insert into delivery_attempts (delivery_id, status_code, latency_ms, error, manual)
      values (${deliveryId}, ${outcome.status}, ${outcome.latencyMs}, ${clip(outcome.error)}, ${manual})`,
  );
}

export async function loadEvent(db: Db, eventId: string): Promise<PublishedEvent | undefined> {
  const [row] = await queryRows<{
    id: string;
    type: EventType;
    user_id: string;
    transaction_id: string;
    created_at: string | Date;
    payload: EventData;
  }>(
    db,
    sql`select id, type, user_id, transaction_id, created_at, payload from events where id = ${eventId}`,
  );
  if (!row) return undefined;
  return {
    id: row.id,
    type: row.type,
    user_id: row.user_id,
    transaction_id: row.transaction_id,
    created_at: new Date(row.created_at).toISOString(),
    data: row.payload,
  };
}

/**
 * Deletes, in batches of `batchSize` until `deadline`, completed deliveries (with their attempts)
 * and events past the retention window that the relay has passed and no consumer still owes.
 */
export async function pruneEvents(
  db: Db,
  options: { retentionDays: number; batchSize: number; deadline: number },
): Promise<{ deliveries: number; events: number }> {
  const cutoff = sql`now() - ${options.retentionDays} * interval '1 day'`;
  const pruned = { deliveries: 0, events: 0 };
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
  pruned.deliveries = await batches(
    sql`with gone as (
        delete from deliveries where id in (
          select id from deliveries where state <> 'pending' and completed_at < ${cutoff}
          limit ${options.batchSize})
        returning 1)
      select count(*) as n from gone`,
  );
  const [state] = await queryRows<{ value: string }>(
    db,
    sql`select value from job_state where name = ${RELAY_STATE_NAME}`,
  );
  const relayed = state ? decodeFeedCursor(state.value) : undefined;
  if (relayed) {
    pruned.events = await batches(
      sql`with gone as (
          delete from events where (user_id, sequence) in (
            select e.user_id, e.sequence from events e
            where e.created_at < ${cutoff}
              and (e.tx_id, e.sequence) <= (${relayed.txId}::xid8, ${relayed.sequence}::bigint)
              and not exists (
                select 1 from deliveries d where d.state = 'pending' and d.event_id = e.id)
            limit ${options.batchSize})
          returning 1)
        select count(*) as n from gone`,
    );
  }
  return pruned;
}
