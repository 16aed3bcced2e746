import { sql, type SQL } from 'drizzle-orm';
import type { EventType } from '../../db/schema/index.js';
import { queryRows, type Db } from '../../db/client.js';

/** A position in the feed: the writing transaction's id, then the event's sequence. */
export interface FeedPosition {
  txId: string;
  sequence: string;
}

/** An event as consumers see it: the feed, webhook bodies and in-process handlers alike. */
export interface PublishedEvent {
  id: string;
  type: EventType;
  user_id: string;
  transaction_id: string;
  created_at: string;
  /** The transaction as the API shows it, without `full_name`; `previous` for an update. */
  data: EventData;
}

export interface EventData {
  transaction: Record<string, unknown>;
  previous?: Record<string, unknown>;
}

export interface FeedEntry {
  position: FeedPosition;
  event: PublishedEvent;
}

const DIGITS = /^\d{1,20}$/;

/** Cursors are opaque to clients: base64url of "<tx id>.<sequence>" of the last event served. */
export function encodeFeedCursor(position: FeedPosition): string {
  return Buffer.from(`${position.txId}.${position.sequence}`).toString('base64url');
}

export function decodeFeedCursor(cursor: string): FeedPosition | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const [txId, sequence, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('.');
  if (rest.length > 0 || !txId || !sequence || !DIGITS.test(txId) || !DIGITS.test(sequence)) {
    return undefined;
  }
  // Both are bigint columns: a larger number would fail there (a 500), not here (a 422).
  if (BigInt(txId) >= 2n ** 63n || BigInt(sequence) >= 2n ** 63n) return undefined;
  return { txId, sequence };
}

export interface FeedQuery {
  after?: FeedPosition | undefined;
  userId?: string | undefined;
  type?: EventType | undefined;
  limit: number;
}

/** An `events` row as raw SQL returns it (dates and int8 differ between pg and PGlite). */
export interface EventRow {
  id: string;
  type: EventType;
  user_id: string;
  transaction_id: string;
  created_at: string | Date;
  payload: EventData;
}

/** The columns `toPublishedEvent` reads, for raw selects. */
export const EVENT_COLUMNS = sql.raw('id, type, user_id, transaction_id, created_at, payload');

export function toPublishedEvent(row: EventRow): PublishedEvent {
  return {
    id: row.id,
    type: row.type,
    user_id: row.user_id,
    transaction_id: row.transaction_id,
    created_at: new Date(row.created_at).toISOString(),
    data: row.payload,
  };
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
 */
async function feedBarrier(db: Db): Promise<string> {
  const [row] = await queryRows<{ barrier: string }>(
    db,
    sql`with s as (select pg_snapshot_xmax(pg_current_snapshot())::text::numeric as xmax),
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
  );
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
  const barrier = await feedBarrier(db);
  const conditions: SQL[] = [sql`tx_id < ${barrier}::bigint`];
  if (query.after) {
    conditions.push(
      sql`(tx_id, sequence) > (${query.after.txId}::bigint, ${query.after.sequence}::bigint)`,
    );
  }
  if (query.userId !== undefined) conditions.push(sql`user_id = ${query.userId}`);
  if (query.type !== undefined) conditions.push(sql`type = ${query.type}`);
  // The text forms get names of their own: ORDER BY a bare name would pick an output column
  // over the table's, and sort the ids as text ('1000' before '999').
  const rows = await queryRows<EventRow & { position_tx: string; position_sequence: string }>(
    db,
    sql`select tx_id::text as position_tx, sequence::text as position_sequence, ${EVENT_COLUMNS}
      from events where ${sql.join(conditions, sql` and `)}
      order by events.tx_id, events.sequence limit ${query.limit}`,
  );
  return rows.map((row) => ({
    position: { txId: row.position_tx, sequence: row.position_sequence },
    event: toPublishedEvent(row),
  }));
}
