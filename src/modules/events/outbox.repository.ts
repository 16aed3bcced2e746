import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { alias, type AnyPgColumn } from 'drizzle-orm/pg-core';
import {
  deliveries,
  deliveryAttempts,
  eventConsumers,
  events,
  webhooks,
  type DeliveryState,
} from '../../db/schema/index.js';
import { queryRows, runStatement, type Db, type Statement } from '../../db/client.js';
import { bare, ident, statementText } from '../../db/sql.js';
import {
  daysAgo,
  eventColumns,
  feedOrder,
  toPublishedEvent,
  type EventRow,
} from './events.repository.js';
import type { FeedPosition, PublishedEvent } from './feed.js';

/*
 * The outbox's statements: the consumers owed events (`event_consumers`, webhooks), the
 * deliveries the relay writes for them, and the attempts the worker records. The rules that
 * decide what to write are in outbox.ts.
 */

/** `next_attempt_at` of a delivery waiting behind an earlier one of its (consumer, user). */
export const PARKED_UNTIL = new Date('9999-12-31T00:00:00.000Z');
const PARKED = sql`${PARKED_UNTIL.toISOString()}::timestamptz`;
/** PARKED in a statement's text. */
const PARKED_TEXT = `'${PARKED_UNTIL.toISOString()}'::timestamptz`;

/** The deliveries table and its columns, quoted, for the statements written as text. */
const D = ident(deliveries);
const dc = {
  id: ident(deliveries.id),
  userId: ident(deliveries.userId),
  consumer: ident(deliveries.consumer),
  position: ident(deliveries.position),
  state: ident(deliveries.state),
  webhookId: ident(deliveries.webhookId),
  eventId: ident(deliveries.eventId),
  eventType: ident(deliveries.eventType),
  attempts: ident(deliveries.attempts),
  nextAttemptAt: ident(deliveries.nextAttemptAt),
  retryUntil: ident(deliveries.retryUntil),
  completedAt: ident(deliveries.completedAt),
  lastStatus: ident(deliveries.lastStatus),
  lastError: ident(deliveries.lastError),
  updatedAt: ident(deliveries.updatedAt),
};
const ac = {
  userId: ident(deliveryAttempts.userId),
  deliveryId: ident(deliveryAttempts.deliveryId),
  statusCode: ident(deliveryAttempts.statusCode),
  latencyMs: ident(deliveryAttempts.latencyMs),
  error: ident(deliveryAttempts.error),
  manual: ident(deliveryAttempts.manual),
};

/** Written literally, not bound, so the planner matches the partial indexes on pending rows. */
const pendingOf = (table: { state: AnyPgColumn }) => sql`${table.state} = 'pending'`;

/** True of a delivery `d` with no pending delivery before it in its (consumer, user). */
function firstOfStream(d: {
  consumer: AnyPgColumn;
  userId: AnyPgColumn;
  position: AnyPgColumn;
}): SQL {
  const earlier = alias(deliveries, 'earlier');
  return sql`not exists (
    select 1 from ${deliveries} as ${earlier}
    where ${pendingOf(earlier)} and ${earlier.consumer} = ${d.consumer}
      and ${earlier.userId} = ${d.userId} and ${earlier.position} < ${d.position})`;
}

const TRY_LOCK: Statement = {
  name: 'outbox_try_transaction_lock',
  text: 'select pg_try_advisory_xact_lock($1::integer, 0) as locked',
};

/**
 * Takes the advisory lock (`lockClass`, 0) for the rest of `dbTx`; false when another session
 * holds it.
 */
export async function tryTransactionLock(dbTx: Db, lockClass: number): Promise<boolean> {
  const [row] = await runStatement<{ locked: boolean }>(dbTx, TRY_LOCK, [lockClass]);
  return row?.locked === true;
}

/** Records in-process consumers and the event types each wants, refreshing their last sighting. */
export async function upsertEventConsumers(
  db: Db,
  consumers: readonly { name: string; eventTypes: readonly string[] }[],
): Promise<void> {
  if (consumers.length === 0) return;
  await db
    .insert(eventConsumers)
    .values(consumers.map((c) => ({ name: c.name, eventTypes: [...c.eventTypes] })))
    .onConflictDoUpdate({
      target: eventConsumers.name,
      set: {
        eventTypes: sql`excluded.${bare(eventConsumers.eventTypes)}`,
        lastSeenAt: sql`now()`,
      },
    });
}

export async function deleteEventConsumer(db: Db, name: string): Promise<void> {
  await db.delete(eventConsumers).where(eq(eventConsumers.name, name));
}

/** Drops what `consumer` is still owed; how many deliveries. */
export async function deletePendingDeliveries(db: Db, consumer: string): Promise<number> {
  const dropped = await db
    .delete(deliveries)
    .where(and(eq(deliveries.consumer, consumer), pendingOf(deliveries)))
    .returning({ id: deliveries.id });
  return dropped.length;
}

/** Events after `relayed` (all without it), and deliveries still pending, in one snapshot. */
export async function countBacklog(
  db: Db,
  relayed: FeedPosition | undefined,
): Promise<{ unrelayed: number; pending: number }> {
  const after = relayed ? sql`where ${feedOrder(events, '>', relayed)}` : sql``;
  const [row] = await queryRows<{ unrelayed: string | number; pending: string | number }>(
    db,
    sql`select (select count(*) from ${events} ${after}) as unrelayed,
      (select count(*) from ${deliveries} where ${pendingOf(deliveries)}) as pending`,
  );
  return { unrelayed: Number(row?.unrelayed ?? 0), pending: Number(row?.pending ?? 0) };
}

/** A consumer the relay owes events: an in-process handler or an active webhook. */
export interface Subscriber {
  consumer: string;
  webhookId: string | null;
  /** The event types it wants; empty means every type. */
  eventTypes: string[];
  /** Events written before this are not its business: history is not replayed to it. */
  since: Date;
}

const W = ident(webhooks);

/** Every consumer the relay owes events (see listSubscribers). A fixed text, prepared. */
const LIST_SUBSCRIBERS: Statement = {
  name: 'outbox_list_subscribers',
  text: `select ${ident(eventConsumers.name)} as consumer, null::uuid as webhook_id,
      ${ident(eventConsumers.eventTypes)} as event_types, ${ident(eventConsumers.registeredAt)} as since
    from ${ident(eventConsumers)}
    union all
    select 'webhook:' || ${ident(webhooks.id)}, ${ident(webhooks.id)}, ${ident(webhooks.eventTypes)},
      ${ident(webhooks.createdAt)}
    from ${W} where ${ident(webhooks.active)}
    order by consumer`,
};

/** Every consumer the relay fans events out to, by consumer name. */
export async function listSubscribers(db: Db): Promise<Subscriber[]> {
  const rows = await runStatement<{
    consumer: string;
    webhook_id: string | null;
    event_types: string[];
    since: string | Date;
  }>(db, LIST_SUBSCRIBERS, []);
  return rows.map((row) => ({
    consumer: row.consumer,
    webhookId: row.webhook_id,
    eventTypes: row.event_types,
    since: new Date(row.since),
  }));
}

/**
 * The earliest pending delivery of each stream (consumer, user) in `$1` (a JSON array of
 * `{consumer, user_id}`), as its `id`: for the statements that lock or release stream heads.
 */
const STREAM_HEADS = `select distinct on (h.${dc.consumer}, h.${dc.userId}) h.${dc.id} from ${D} h
      where h.${dc.state} = 'pending' and (h.${dc.consumer}, h.${dc.userId}) in (
        select s.consumer, s.user_id from json_to_recordset($1::json) as s(consumer text, user_id text))
      order by h.${dc.consumer}, h.${dc.userId}, h.${dc.position}`;

/** Locks stream heads (see lockPendingHeads). A fixed text, prepared once per connection. */
const LOCK_PENDING_HEADS: Statement = {
  name: 'outbox_lock_pending_heads',
  text: `select d.${dc.consumer} as consumer, d.${dc.userId} as user_id from ${D} d
    where d.${dc.state} = 'pending' and d.${dc.id} in (${STREAM_HEADS})
    for share of d`,
};

/** Streams as STREAM_HEADS reads them. */
const streamsJson = (streams: readonly { consumer: string; userId: string }[]) =>
  JSON.stringify(streams.map((s) => ({ consumer: s.consumer, user_id: s.userId })));

/**
 * Of the streams (consumer, user) given, those with a pending delivery, each one's earliest locked
 * (FOR SHARE) until `dbTx` ends.
 */
export async function lockPendingHeads(
  dbTx: Db,
  streams: readonly { consumer: string; userId: string }[],
): Promise<{ consumer: string; userId: string }[]> {
  if (streams.length === 0) return [];
  const rows = await runStatement<{ consumer: string; user_id: string }>(dbTx, LOCK_PENDING_HEADS, [
    streamsJson(streams),
  ]);
  return rows.map((row) => ({ consumer: row.consumer, userId: row.user_id }));
}

export interface NewDelivery {
  id: string;
  consumer: string;
  webhookId: string | null;
  eventId: string;
  eventType: string;
  userId: string;
  /** Attemptable now; otherwise parked behind an earlier delivery of its (consumer, user). */
  due: boolean;
}

/**
 * Inserts deliveries (`$1`: a JSON array of NewDelivery rows, each with its index `n`) in the
 * order given, so their `position`s follow it, each retried for `$2` ms. A fixed text, prepared
 * once per connection: building the insert row by row cost the relay more than running it.
 */
const INSERT_DELIVERIES: Statement = {
  name: 'outbox_insert_deliveries',
  text: `insert into ${D} (${dc.id}, ${dc.consumer}, ${dc.webhookId}, ${dc.eventId}, ${dc.eventType},
      ${dc.userId}, ${dc.retryUntil}, ${dc.nextAttemptAt})
    select r.id, r.consumer, r.webhook_id, r.event_id, r.event_type, r.user_id,
      now() + $2::double precision * interval '1 millisecond',
      case when r.due then now() else ${PARKED_TEXT} end
    from json_to_recordset($1::json) as r(n integer, id uuid, consumer text, webhook_id uuid,
      event_id uuid, event_type text, user_id text, due boolean)
    order by r.n
    on conflict (${dc.userId}, ${dc.consumer}, ${dc.eventId}) do nothing`,
};

/**
 * Inserts deliveries in the order given (their `position`), each retried for `retryWindowMs`;
 * one already there for its (user, consumer, event) is left as it is.
 */
export async function insertDeliveries(
  dbTx: Db,
  rows: readonly NewDelivery[],
  retryWindowMs: number,
): Promise<void> {
  if (rows.length === 0) return;
  const json = JSON.stringify(
    rows.map((row, n) => ({
      n,
      id: row.id,
      consumer: row.consumer,
      webhook_id: row.webhookId,
      event_id: row.eventId,
      event_type: row.eventType,
      user_id: row.userId,
      due: row.due,
    })),
  );
  await runStatement(dbTx, INSERT_DELIVERIES, [json, retryWindowMs]);
}

export interface ClaimedDelivery {
  id: string;
  consumer: string;
  webhookId: string | null;
  /** This claim's attempt number (1 for the first). */
  attempt: number;
  event: PublishedEvent;
  /**
   * A webhook delivery's webhook, its row as JSON (`to_json`, column names as keys), read by the
   * claim itself: one read fewer per claim. Null for a handler's delivery.
   */
  webhook: Record<string, unknown> | null;
}

/** The claimed deliveries' events, as the claim statement names them. */
const ev = alias(events, 'ev');

/**
 * The claim (see claimDeliveries): `$1` the handler consumers this worker runs, comma-separated
 * (names never hold a comma), `$2` the limit, `$3` the lease in ms. A fixed text, so it is
 * prepared once per connection and never built again.
 */
const CLAIM_STATEMENT: Statement = {
  name: 'outbox_claim_deliveries',
  text: `with due as (
      select d.${dc.id} as id from ${D} d
      left join ${ident(webhooks)} w on w.${ident(webhooks.id)} = d.${dc.webhookId}
      where d.${dc.state} = 'pending' and d.${dc.nextAttemptAt} <= now()
        and ((d.${dc.webhookId} is null
            and d.${dc.consumer} = any(string_to_array($1::text, ',')))
          or w.${ident(webhooks.active)})
        and not exists (
          select 1 from ${D} e
          where e.${dc.state} = 'pending' and e.${dc.consumer} = d.${dc.consumer}
            and e.${dc.userId} = d.${dc.userId} and e.${dc.position} < d.${dc.position})
      order by d.${dc.nextAttemptAt}, d.${dc.position}
      limit $2
      for update of d skip locked),
    claimed as (
      update ${D} d set ${dc.attempts} = d.${dc.attempts} + 1,
        ${dc.nextAttemptAt} = now() + $3::double precision * interval '1 millisecond',
        ${dc.updatedAt} = now()
      from due where d.${dc.id} = due.id
      returning d.${dc.id} as delivery_id, d.${dc.consumer} as consumer,
        d.${dc.webhookId} as webhook_id, d.${dc.attempts} as attempts,
        d.${dc.eventId} as event_id)
    select claimed.delivery_id, claimed.consumer, claimed.webhook_id, claimed.attempts,
      ${statementText(eventColumns(ev))}, to_json(w) as webhook
    from claimed join ${ident(events)} ev on ev.${ident(events.id)} = claimed.event_id
      left join ${ident(webhooks)} w on w.${ident(webhooks.id)} = claimed.webhook_id`,
};

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
  const rows = await runStatement<
    EventRow & {
      delivery_id: string;
      consumer: string;
      webhook_id: string | null;
      attempts: number;
      webhook: Record<string, unknown> | string | null;
    }
  >(db, CLAIM_STATEMENT, [options.handlerConsumers.join(','), options.limit, options.leaseMs]);
  return rows.map((row) => ({
    id: row.delivery_id,
    consumer: row.consumer,
    webhookId: row.webhook_id,
    attempt: Number(row.attempts),
    event: toPublishedEvent(row),
    webhook:
      typeof row.webhook === 'string'
        ? (JSON.parse(row.webhook) as Record<string, unknown>)
        : row.webhook,
  }));
}

/**
 * Of these deliveries, those that still exist, each held until `dbTx` ends: deleting its webhook
 * (which deletes the delivery) waits for the attempt to be recorded, or has already happened, so
 * an attempt is never logged against a delivery that is gone (a foreign-key violation, 23503).
 */
export async function holdDeliveries(
  dbTx: Db,
  deliveryIds: readonly string[],
): Promise<Set<string>> {
  if (deliveryIds.length === 0) return new Set();
  const rows = await dbTx
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(inArray(deliveries.id, [...deliveryIds]))
    .for('key share');
  return new Set(rows.map((row) => row.id));
}

/** An attempt as it is logged; `error` already cut to its bound. */
export interface AttemptRecord {
  status: number | null;
  latencyMs: number;
  error: string | null;
}

export async function insertAttempt(
  dbTx: Db,
  deliveryId: string,
  attempt: AttemptRecord,
  manual: boolean,
): Promise<void> {
  await dbTx.execute(
    // The attempt takes its delivery's user_id: the pair is the foreign key that co-locates them.
    sql`insert into ${deliveryAttempts} (${bare(deliveryAttempts.userId)},
        ${bare(deliveryAttempts.deliveryId)}, ${bare(deliveryAttempts.statusCode)},
        ${bare(deliveryAttempts.latencyMs)}, ${bare(deliveryAttempts.error)},
        ${bare(deliveryAttempts.manual)})
      select ${deliveries.userId}, ${deliveries.id}, ${attempt.status}, ${attempt.latencyMs},
        ${attempt.error}, ${manual}
      from ${deliveries} where ${deliveries.id} = ${deliveryId}`,
  );
}

/** The stream a delivery belongs to, and the state a change left it in. */
export interface DeliveryStream {
  state: DeliveryState;
  consumer: string;
  userId: string;
}

/** An automatic attempt at a claimed delivery, as it is recorded. */
export interface ClaimAttempt extends AttemptRecord {
  deliveryId: string;
  userId: string;
  /** The claim's attempt number: only the claim still current may change the delivery. */
  attempt: number;
  ok: boolean;
  /** After a failure, how long until the next attempt. */
  retryDelayMs: number;
}

/**
 * Records automatic attempts (`$1`: a JSON array of ClaimAttempt rows) in one statement: holds
 * the deliveries that still exist (FOR KEY SHARE, as holdDeliveries does), logs an attempt for
 * each, settles the claims still current (a success completes its delivery; a failure schedules
 * the next attempt, never past `retry_until`, or marks it dead once one fails at or after it),
 * and returns the stream of each settled one. The update reads the held rows, so each row is
 * locked before it is changed: in one statement, PostgreSQL runs the parts in whatever order the
 * plan pulls them, and a lock taken after the update skips the rows the update changed (under a
 * nested-loop plan, deliveries were completed with no attempt logged and reported deleted).
 * A fixed text, so it is prepared once per connection and never built again. Releasing the
 * successors of completed streams is a second statement (recordClaimAttempts): this one's
 * snapshot predates a successor the relay inserted, parked, while it held the head this
 * statement waited for.
 */
const RECORD_ATTEMPTS_STATEMENT: Statement = {
  name: 'outbox_record_attempts',
  text: `with v as (
      select * from json_to_recordset($1::json) as v(user_id text, id uuid, attempt integer,
        ok boolean, status integer, latency_ms integer, error text, retry_delay_ms double precision)),
    held as (
      select d.${dc.userId} as user_id, d.${dc.id} as id from ${D} d
      where (d.${dc.userId}, d.${dc.id}) in (select user_id, id from v)
      for key share of d),
    logged as (
      insert into ${ident(deliveryAttempts)} (${ac.userId}, ${ac.deliveryId}, ${ac.statusCode},
        ${ac.latencyMs}, ${ac.error}, ${ac.manual})
      select v.user_id, v.id, v.status, v.latency_ms, v.error, false
      from v join held on held.user_id = v.user_id and held.id = v.id),
    settled as (
      update ${D} d set
        ${dc.state} = case when v.ok then 'succeeded'
          when now() >= d.${dc.retryUntil} then 'dead' else 'pending' end,
        ${dc.completedAt} = case when v.ok or now() >= d.${dc.retryUntil} then now() end,
        ${dc.nextAttemptAt} = case when v.ok then d.${dc.nextAttemptAt}
          else least(now() + v.retry_delay_ms * interval '1 millisecond', d.${dc.retryUntil}) end,
        ${dc.lastStatus} = v.status,
        ${dc.lastError} = case when v.ok then null else v.error end,
        ${dc.updatedAt} = now()
      from v join held on held.user_id = v.user_id and held.id = v.id
      where d.${dc.userId} = held.user_id and d.${dc.id} = held.id and d.${dc.state} = 'pending'
        and d.${dc.attempts} = v.attempt
      returning d.${dc.id} as id, d.${dc.attempts} as attempt, d.${dc.state} as state,
        d.${dc.consumer} as consumer, d.${dc.userId} as user_id)
    select v.id::text as id, v.attempt, held.id is not null as held, settled.state,
      settled.consumer, settled.user_id
    from v left join held on held.user_id = v.user_id and held.id = v.id
      left join settled on settled.id = v.id and settled.attempt = v.attempt`,
};

/**
 * Records automatic attempts at claimed deliveries (see RECORD_ATTEMPTS_STATEMENT), in one round
 * trip whatever their number; for each, in order: whether its delivery still existed, and the
 * state its claim left it in (undefined when the claim was no longer current).
 */
export async function recordClaimAttempts(
  db: Db,
  attempts: readonly ClaimAttempt[],
): Promise<{ held: boolean; state: DeliveryState | undefined }[]> {
  if (attempts.length === 0) return [];
  const rows = await db.transaction(async (dbTx) => {
    const settled = await runStatement<{
      id: string;
      attempt: number;
      held: boolean;
      state: DeliveryState | null;
      consumer: string | null;
      user_id: string | null;
    }>(dbTx, RECORD_ATTEMPTS_STATEMENT, [JSON.stringify(attempts.map(attemptJson))]);
    // A new statement, so a new snapshot: it sees a successor the relay committed meanwhile.
    await releaseNext(
      dbTx,
      settled.flatMap(({ state, consumer, user_id: userId }) =>
        state !== null && state !== 'pending' && consumer !== null && userId !== null
          ? [{ consumer, userId }]
          : [],
      ),
    );
    return settled;
  });
  const byClaim = new Map(rows.map((row) => [`${row.id} ${Number(row.attempt)}`, row]));
  return attempts.map((a) => {
    const row = byClaim.get(`${a.deliveryId} ${a.attempt}`);
    return { held: row?.held ?? false, state: row?.state ?? undefined };
  });
}

/** A ClaimAttempt as RECORD_ATTEMPTS_STATEMENT reads it. */
function attemptJson(a: ClaimAttempt) {
  return {
    user_id: a.userId,
    id: a.deliveryId,
    attempt: a.attempt,
    ok: a.ok,
    status: a.status,
    latency_ms: a.latencyMs,
    error: a.error,
    retry_delay_ms: a.retryDelayMs,
  };
}

/** Notes a failed manual attempt on the delivery; its state and schedule stay as they are. */
export async function noteManualFailure(
  dbTx: Db,
  deliveryId: string,
  attempt: Pick<AttemptRecord, 'status' | 'error'>,
): Promise<void> {
  await dbTx
    .update(deliveries)
    .set({ lastStatus: attempt.status, lastError: attempt.error, updatedAt: sql`now()` })
    .where(eq(deliveries.id, deliveryId));
}

/** Completes the delivery whatever its state; its stream and the state it was in before. */
export async function completeManually(
  dbTx: Db,
  deliveryId: string,
  status: number | null,
): Promise<{ consumer: string; userId: string; was: DeliveryState } | undefined> {
  const d = alias(deliveries, 'd');
  const before = alias(deliveries, 'before');
  const [row] = await queryRows<{ consumer: string; user_id: string; was: DeliveryState }>(
    dbTx,
    sql`update ${deliveries} as ${d} set ${bare(deliveries.state)} = 'succeeded',
        ${bare(deliveries.completedAt)} = now(), ${bare(deliveries.updatedAt)} = now(),
        ${bare(deliveries.lastStatus)} = ${status}, ${bare(deliveries.lastError)} = null
      from ${deliveries} as ${before} where ${before.id} = ${d.id} and ${d.id} = ${deliveryId}
      returning ${d.consumer} as consumer, ${d.userId} as user_id, ${before.state} as was`,
  );
  return row && { consumer: row.consumer, userId: row.user_id, was: row.was };
}

/** Releases stream heads (see releaseNext). A fixed text, prepared once per connection. */
const RELEASE_NEXT: Statement = {
  name: 'outbox_release_next',
  text: `update ${D} set ${dc.nextAttemptAt} = now()
    where ${dc.id} in (${STREAM_HEADS}) and ${dc.nextAttemptAt} = ${PARKED_TEXT}`,
};

/** Makes the next parked delivery of each (consumer, user) due now. */
export async function releaseNext(
  dbTx: Db,
  streams: readonly { consumer: string; userId: string }[],
): Promise<void> {
  if (streams.length === 0) return;
  await runStatement(dbTx, RELEASE_NEXT, [streamsJson(streams)]);
}

/**
 * Releases parked deliveries with nothing pending before them. Completions release their
 * successor themselves; this catches the one that was relayed while its predecessor completed.
 */
export async function releaseStranded(db: Db, batchSize: number): Promise<number> {
  const d = alias(deliveries, 'd');
  const rows = await queryRows<{ id: string }>(
    db,
    sql`update ${deliveries} set ${bare(deliveries.nextAttemptAt)} = now()
      where ${deliveries.id} in (
        select ${d.id} from ${deliveries} as ${d}
        where ${pendingOf(d)} and ${d.nextAttemptAt} = ${PARKED}
          and ${firstOfStream(d)}
        limit ${batchSize})
      returning ${deliveries.id} as id`,
  );
  return rows.length;
}

/** How long after its retry window an unattempted delivery (paused webhook, stopped handler) dies. */
const EXPIRY_GRACE = sql`interval '1 hour'`;
const EXPIRED_ERROR =
  'Expired without a successful attempt (webhook paused or handler not running)';

/**
 * Marks dead up to `batchSize` pending deliveries an hour past their retry window (their webhook
 * was paused, or no worker runs their handler); how many.
 */
export async function expireOverdueDeliveries(db: Db, batchSize: number): Promise<number> {
  const d = alias(deliveries, 'd');
  const [row] = await queryRows<{ n: number | string }>(
    db,
    sql`with gone as (
        update ${deliveries} set ${bare(deliveries.state)} = 'dead',
          ${bare(deliveries.completedAt)} = now(), ${bare(deliveries.updatedAt)} = now(),
          ${bare(deliveries.lastError)} = ${EXPIRED_ERROR}
        where ${deliveries.id} in (
          select ${d.id} from ${deliveries} as ${d}
          where ${pendingOf(d)} and ${d.retryUntil} < now() - ${EXPIRY_GRACE}
          limit ${batchSize})
        returning 1)
      select count(*) as n from gone`,
  );
  return Number(row?.n ?? 0);
}

/** Deletes up to `batchSize` deliveries completed more than `retentionDays` ago; how many. */
export async function deleteCompletedDeliveries(
  db: Db,
  retentionDays: number,
  batchSize: number,
): Promise<number> {
  const d = alias(deliveries, 'd');
  const [row] = await queryRows<{ n: number | string }>(
    db,
    sql`with gone as (
        delete from ${deliveries} where ${deliveries.id} in (
          select ${d.id} from ${deliveries} as ${d}
          where ${d.state} <> 'pending' and ${d.completedAt} < ${daysAgo(retentionDays)}
          limit ${batchSize})
        returning 1)
      select count(*) as n from gone`,
  );
  return Number(row?.n ?? 0);
}
