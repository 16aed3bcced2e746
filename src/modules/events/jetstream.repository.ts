import { sql } from 'drizzle-orm';
import { jobState } from '../../db/schema/index.js';
import type { Db } from '../../db/client.js';
import { readJobState } from '../../db/job-state.repository.js';
import { bare } from '../../db/sql.js';
import { decodeJetStreamPosition, encodeJetStreamPosition, type FeedPosition } from './feed.js';
import { tryTransactionLock } from './outbox.repository.js';

/** First key of the JetStream relay's advisory lock (the outbox relay's is "FIDR"). */
const JETSTREAM_LOCK_CLASS = 0x46_49_44_4a; // "FIDJ"
/**
 * job_state name of the feed position the stream is known to hold, as "<tx id>.<sequence>"
 * (encodeJetStreamPosition).
 */
export const JETSTREAM_STATE_NAME = 'jetstream-relay';

/**
 * Takes the relay's lock for the rest of `dbTx`; false when another relay holds it. On PostgreSQL
 * it excludes every other process; it is an economy, not the fence (see docs/jetstream.md).
 */
export async function tryJetStreamLock(dbTx: Db): Promise<boolean> {
  return tryTransactionLock(dbTx, JETSTREAM_LOCK_CLASS);
}

/** The position saved after the last acknowledged publish, if any. */
export async function readJetStreamPosition(db: Db): Promise<FeedPosition | undefined> {
  const value = await readJobState(db, JETSTREAM_STATE_NAME);
  return value === undefined ? undefined : decodeJetStreamPosition(value);
}

/**
 * Saves the position, never moving it back: two relays (on PGlite, where the lock cannot
 * exclude) may finish out of order, and a stale save must not undo a newer one.
 */
export async function saveJetStreamPosition(db: Db, position: FeedPosition): Promise<void> {
  await db
    .insert(jobState)
    .values({
      name: JETSTREAM_STATE_NAME,
      value: encodeJetStreamPosition(position),
      updatedAt: sql`now()`,
    })
    .onConflictDoUpdate({
      target: jobState.name,
      set: {
        value: sql`excluded.${bare(jobState.value)}`,
        updatedAt: sql`excluded.${bare(jobState.updatedAt)}`,
      },
      // The stored text's two fields, as encodeJetStreamPosition writes them.
      setWhere: sql`(split_part(${jobState.value}, '.', 1)::bigint,
          split_part(${jobState.value}, '.', 2)::bigint)
        < (${position.txId}::bigint, ${position.sequence}::bigint)`,
    });
}
