import { runStatement, type Db, type Statement } from './client.js';

/*
 * WAL positions and standby status, for the read router (platform/read-replicas.ts). No table:
 * these read PostgreSQL's own functions, as text (`16/B374D848`) the router parses.
 */

/**
 * Past every commit acknowledged before it runs: a commit answers once its record is flushed, so
 * the flush position covers it. Under synchronous_commit=off a commit answers before the flush:
 * then the insert position (which can sit just past a page header that replay reaches only with
 * the next record, so it is not the default).
 */
const PRIMARY_POSITION: Statement = {
  name: 'fido_primary_wal_position',
  text: `select (case when current_setting('synchronous_commit') = 'off'
    then pg_current_wal_insert_lsn() else pg_current_wal_flush_lsn() end)::text as lsn`,
};

const REPLICA_STATUS: Statement = {
  name: 'fido_replica_status',
  text: `select pg_last_wal_replay_lsn()::text as replay, pg_last_wal_receive_lsn()::text as receive,
    pg_is_in_recovery() and pg_is_wal_replay_paused() as paused, pg_is_in_recovery() as standby,
    extract(epoch from (clock_timestamp() - pg_last_xact_replay_timestamp())) * 1000 as since_ms`,
};

/** The primary's WAL position (see PRIMARY_POSITION), from a query that starts after the call. */
export async function readPrimaryWalPosition(db: Db): Promise<string | undefined> {
  const [row] = await runStatement<{ lsn: string }>(db, PRIMARY_POSITION, []);
  return row?.lsn;
}

export interface ReplicaStatus {
  /** Replayed WAL position; null on a server that is not a standby. */
  replay: string | null;
  /** Received WAL position; null when not streaming. */
  receive: string | null;
  paused: boolean;
  standby: boolean;
  /** Milliseconds since the last replayed transaction (pg returns a number or numeric text). */
  sinceMs: number | string | null;
}

/** Where a standby's replay stands. */
export async function readReplicaStatus(db: Db): Promise<ReplicaStatus | undefined> {
  const [row] = await runStatement<
    Omit<ReplicaStatus, 'sinceMs'> & { since_ms: ReplicaStatus['sinceMs'] }
  >(db, REPLICA_STATUS, []);
  if (row === undefined) return undefined;
  const { since_ms: sinceMs, ...rest } = row;
  return { ...rest, sinceMs };
}
