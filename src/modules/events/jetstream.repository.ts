import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import type { FeedPosition } from './feed.js';

/** First key of the JetStream relay's advisory lock (the outbox relay's is "FIDR"). */
const JETSTREAM_LOCK_CLASS = 0x46_49_44_4a; // "FIDJ"
/** job_state name of the feed position the stream is known to hold, as "<tx id>.<sequence>". */
export const JETSTREAM_STATE_NAME = 'jetstream-relay';

/**
 * Takes the relay's lock for the rest of `dbTx`; false when another relay holds it. On PostgreSQL
 * it excludes every other process; it is an economy, not the fence (see docs/jetstream.md).
 */
export async function tryJetStreamLock(dbTx: Db): Promise<boolean> {
  const [row] = await queryRows<{ locked: boolean }>(
    dbTx,
    sql`select pg_try_advisory_xact_lock(${JETSTREAM_LOCK_CLASS}, 0) as locked`,
  );
  return row?.locked === true;
}

/** The feed position of one event, or undefined when it is not (or no longer) in `events`. */
export async function feedPositionOf(db: Db, eventId: string): Promise<FeedPosition | undefined> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(eventId)) {
    return undefined;
  }
  const [row] = await queryRows<{ tx_id: string; sequence: string }>(
    db,
    sql`select tx_id::text as tx_id, sequence::text as sequence from events where id = ${eventId}`,
  );
  return row && { txId: row.tx_id, sequence: row.sequence };
}

/** The position saved after the last acknowledged publish, if any. */
export async function readJetStreamPosition(db: Db): Promise<FeedPosition | undefined> {
  const [row] = await queryRows<{ value: string }>(
    db,
    sql`select value from job_state where name = ${JETSTREAM_STATE_NAME}`,
  );
  const [txId, sequence] = row?.value.split('.') ?? [];
  return txId && sequence ? { txId, sequence } : undefined;
}

/**
 * Saves the position, never moving it back: two relays (on PGlite, where the lock cannot
 * exclude) may finish out of order, and a stale save must not undo a newer one.
 */
export async function saveJetStreamPosition(db: Db, position: FeedPosition): Promise<void> {
  const value = `${position.txId}.${position.sequence}`;
  await db.execute(
    sql`insert into job_state (name, value, updated_at) values (${JETSTREAM_STATE_NAME}, ${value}, now())
      on conflict (name) do update set value = excluded.value, updated_at = excluded.updated_at
      where (split_part(job_state.value, '.', 1)::bigint, split_part(job_state.value, '.', 2)::bigint)
        < (${position.txId}::bigint, ${position.sequence}::bigint)`,
  );
}

/**
 * Events committed after `position` (all of them without one): those not yet in the stream. Counted
 * up to `cap`, so a large backlog costs a bounded index scan.
 */
export async function countAfter(
  db: Db,
  position: FeedPosition | undefined,
  cap: number,
): Promise<number> {
  const after = position
    ? sql`where (tx_id, sequence) > (${position.txId}::bigint, ${position.sequence}::bigint)`
    : sql``;
  const [row] = await queryRows<{ n: number | string }>(
    db,
    sql`select count(*) as n from (select 1 from events ${after} limit ${cap}) as backlog`,
  );
  return Number(row?.n ?? 0);
}
