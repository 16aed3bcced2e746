import { sql, type SQL } from 'drizzle-orm';
import { alias, type AnyPgColumn } from 'drizzle-orm/pg-core';
import { v7 as uuidv7 } from 'uuid';
import { deliveries, events, type EventType } from '../../db/schema/index.js';
import { queryRows, runStatement, type Db, type Statement } from '../../db/client.js';
import { statementText } from '../../db/sql.js';
import { isUuid } from '../../domain/ids.js';
import type {
  EventData,
  EventHead,
  FeedEntry,
  FeedHead,
  FeedPosition,
  FeedQuery,
  PublishedEvent,
} from './feed.js';

export interface NewEvent {
  type: EventType;
  userId: string;
  transactionId: string;
  payload: Record<string, unknown>;
}

/**
 * Appends to the outbox. Call it with the database transaction of the change it describes, so the
 * event exists exactly when the change does.
 */
export async function appendEvent(dbTx: Db, event: NewEvent): Promise<string> {
  const id = uuidv7();
  await dbTx.insert(events).values({ id, ...event });
  return id;
}

/** An `events` row as `eventHeadColumns` selects it (dates differ between pg and PGlite). */
export interface EventHeadRow {
  id: string;
  type: EventType;
  user_id: string;
  transaction_id: string;
  created_at: string | Date;
}

/** An `events` row as `eventColumns` selects it. */
export interface EventRow extends EventHeadRow {
  payload: EventData;
}

/** An `events` table: the table itself, or an alias of it in a statement. */
type EventsTable = Record<
  'id' | 'type' | 'userId' | 'transactionId' | 'createdAt' | 'payload',
  AnyPgColumn
>;

/** The select list of an `events` row (of `table`) but its payload: what `toEventHead` reads. */
export function eventHeadColumns(table: EventsTable = events): SQL {
  return sql`${table.id} as id, ${table.type} as type, ${table.userId} as user_id,
  ${table.transactionId} as transaction_id, ${table.createdAt} as created_at`;
}

/** The select list of a whole `events` row (of `table`): what `toPublishedEvent` reads. */
export function eventColumns(table: EventsTable = events): SQL {
  return sql`${eventHeadColumns(table)}, ${table.payload} as payload`;
}

/** The one mapper of an `events` row's fields but the payload (the relay fans out by them). */
export function toEventHead(row: EventHeadRow): EventHead {
  return {
    id: row.id,
    type: row.type,
    user_id: row.user_id,
    transaction_id: row.transaction_id,
    created_at: new Date(row.created_at).toISOString(),
  };
}

/** The one mapper of an `events` row: every reader of events (feed, relays, worker) uses it. */
export function toPublishedEvent(row: EventRow): PublishedEvent {
  return { ...toEventHead(row), data: row.payload };
}

/** `(tx_id, sequence) <op> position` of `table` (`events` or an alias of it): feed order. */
export function feedOrder(
  table: { txId: AnyPgColumn; sequence: AnyPgColumn },
  op: '>' | '<=',
  position: FeedPosition,
): SQL {
  return sql`(${table.txId}, ${table.sequence}) ${sql.raw(op)} (${position.txId}::bigint, ${position.sequence}::bigint)`;
}

/** 2^32 and 2^31: a 32-bit xid is widened to the 64-bit one nearest to the snapshot's xmax. */
const EPOCH = 4_294_967_296;
const HALF_EPOCH = 2_147_483_648;

/**
 * The feed's barrier: the oldest transaction still running in this database (the snapshot's
 * xmax when none is). Any event below it is committed or never will be. Taken in a statement of
 * its own, before the events are read, so a transaction that ends in between is seen by the
 * read. Transactions of other databases on the server do not hold it back, as
 * `pg_snapshot_xmin` would; `pg_stat_activity` gives 32-bit xids, widened here by the epoch.
 * A fixed text, prepared once per connection.
 */
const FEED_BARRIER: Statement = {
  name: 'events_feed_barrier',
  text: `with s as (select pg_snapshot_xmax(pg_current_snapshot())::text::numeric as xmax),
      running as (
        select floor(s.xmax / ${EPOCH}) * ${EPOCH} + a.backend_xid::text::numeric as xid, s.xmax
        from pg_stat_activity a, s
        where a.datname = current_database() and a.backend_xid is not null
          and a.pid <> pg_backend_pid())
      select coalesce(
        (select min(case when xid > xmax + ${HALF_EPOCH} then xid - ${EPOCH}
                         when xid < xmax - ${HALF_EPOCH} then xid + ${EPOCH} else xid end)
          from running),
        (select xmax from s))::text as barrier`,
};

async function feedBarrier(db: Db): Promise<string> {
  const [row] = await runStatement<{ barrier: string }>(db, FEED_BARRIER, []);
  if (!row) throw new Error('feed barrier query returned no row');
  return row.barrier;
}

/**
 * Events in commit-safe order after `after`. Only events written by transactions older than every
 * transaction still running in this database are served: one that is still open may commit later
 * with a smaller transaction id, and it must not land behind a cursor a reader already holds. So
 * each event is served exactly once across pages, at the cost of waiting for the oldest open
 * transaction.
 */
export async function readFeed(db: Db, query: FeedQuery): Promise<FeedEntry[]> {
  return feedPage(db, query, eventColumns(), toPublishedEvent);
}

/** Below every feed position: the position "after" the feed's start. */
const FEED_START: FeedPosition = { txId: '-1', sequence: '-1' };

/**
 * The relay's read of the feed, as feedPage reads it without payloads: `$1` the barrier, `$2`
 * and `$3` the position after which to read, `$4` the limit. A fixed text, prepared once per
 * connection: the relay reads the feed on every step.
 */
const FEED_HEADS: Statement = {
  name: 'events_feed_heads',
  text: statementText(sql`select ${events.txId}::text as position_tx,
      ${events.sequence}::text as position_sequence, ${eventHeadColumns()}
    from ${events}
    where ${events.txId} < $1::bigint and (${events.txId}, ${events.sequence}) > ($2::bigint, $3::bigint)
    order by ${events.txId}, ${events.sequence} limit $4::integer`),
};

/** The feed as readFeed serves it, without the payloads (which the relay never reads). */
export async function readFeedHeads(
  db: Db,
  query: Pick<FeedQuery, 'after' | 'limit'>,
): Promise<FeedHead[]> {
  const barrier = await feedBarrier(db);
  const after = query.after ?? FEED_START;
  const rows = await runStatement<
    EventHeadRow & { position_tx: string; position_sequence: string }
  >(db, FEED_HEADS, [barrier, after.txId, after.sequence, query.limit]);
  return rows.map((row) => ({
    position: { txId: row.position_tx, sequence: row.position_sequence },
    event: toEventHead(row),
  }));
}

/** readFeed's page with `columns`, behind the barrier and in feed order, mapped by `toEvent`. */
async function feedPage<Row, Event>(
  db: Db,
  query: FeedQuery,
  columns: SQL,
  toEvent: (row: Row) => Event,
): Promise<FeedEntry<Event>[]> {
  const barrier = await feedBarrier(db);
  const conditions: SQL[] = [sql`${events.txId} < ${barrier}::bigint`];
  if (query.after) conditions.push(feedOrder(events, '>', query.after));
  if (query.userId !== undefined) conditions.push(sql`${events.userId} = ${query.userId}`);
  if (query.type !== undefined) conditions.push(sql`${events.type} = ${query.type}`);
  // The text forms get names of their own, and the order is by the table's (qualified) columns:
  // ordering by an output column would sort the ids as text ('1000' before '999').
  const rows = await queryRows<Row & { position_tx: string; position_sequence: string }>(
    db,
    sql`select ${events.txId}::text as position_tx, ${events.sequence}::text as position_sequence,
        ${columns}
      from ${events} where ${sql.join(conditions, sql` and `)}
      order by ${events.txId}, ${events.sequence} limit ${query.limit}`,
  );
  return rows.map((row) => ({
    position: { txId: row.position_tx, sequence: row.position_sequence },
    event: toEvent(row),
  }));
}

export async function loadEvent(db: Db, eventId: string): Promise<PublishedEvent | undefined> {
  const [row] = await queryRows<EventRow>(
    db,
    sql`select ${eventColumns()} from ${events} where ${events.id} = ${eventId}`,
  );
  return row && toPublishedEvent(row);
}

/** The feed position of one event, or undefined when it is not (or no longer) in `events`. */
export async function feedPositionOf(db: Db, eventId: string): Promise<FeedPosition | undefined> {
  if (!isUuid(eventId)) return undefined;
  const [row] = await queryRows<{ tx_id: string; sequence: string }>(
    db,
    sql`select ${events.txId}::text as tx_id, ${events.sequence}::text as sequence
      from ${events} where ${events.id} = ${eventId}`,
  );
  return row && { txId: row.tx_id, sequence: row.sequence };
}

/**
 * Events committed after `position` (all of them without one), counted up to `cap`, so a large
 * backlog costs a bounded index scan.
 */
export async function countEventsAfter(
  db: Db,
  position: FeedPosition | undefined,
  cap: number,
): Promise<number> {
  const after = position ? sql`where ${feedOrder(events, '>', position)}` : sql``;
  const [row] = await queryRows<{ n: number | string }>(
    db,
    sql`select count(*) as n from (select 1 from ${events} ${after} limit ${cap}) as backlog`,
  );
  return Number(row?.n ?? 0);
}

/** The instant `days` days before the statement's transaction began. */
export const daysAgo = (days: number): SQL => sql`now() - ${days} * interval '1 day'`;

/**
 * Deletes up to `batchSize` events older than `retentionDays` that the outbox relay has passed
 * (`relayed`), that the JetStream stream holds when `published` is given, and that no consumer is
 * still owed; how many.
 */
export async function deleteSpentEvents(
  db: Db,
  options: {
    retentionDays: number;
    relayed: FeedPosition;
    published: FeedPosition | undefined;
    batchSize: number;
  },
): Promise<number> {
  const e = alias(events, 'e');
  const d = alias(deliveries, 'd');
  const inStream = options.published ? sql`and ${feedOrder(e, '<=', options.published)}` : sql``;
  const [row] = await queryRows<{ n: number | string }>(
    db,
    sql`with gone as (
        delete from ${events} where (${events.userId}, ${events.sequence}) in (
          select ${e.userId}, ${e.sequence} from ${events} as ${e}
          where ${e.createdAt} < ${daysAgo(options.retentionDays)}
            and ${feedOrder(e, '<=', options.relayed)}
            ${inStream}
            and not exists (
              select 1 from ${deliveries} as ${d}
              where ${d.state} = 'pending' and ${d.eventId} = ${e.id})
          limit ${options.batchSize})
        returning 1)
      select count(*) as n from gone`,
  );
  return Number(row?.n ?? 0);
}
