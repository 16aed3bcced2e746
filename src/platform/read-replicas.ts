import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Cluster, Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';
import { openDatabase, type DatabaseHandle, type Db } from '../db/client.js';
import { readPrimaryWalPosition, readReplicaStatus } from '../db/replication.repository.js';
import { isDatabaseUnavailable } from './errors.js';
import { outageLog } from './outage.js';

/*
 * Read replicas that are never stale.
 *
 * A read that may use a replica (history, analytics, a transaction by id) is for one user. It uses
 * a replica only when that replica has replayed a WAL position at or past every write of the user
 * that could have been acknowledged before the read began; otherwise it reads the primary.
 *
 * Where that position comes from. Every write, once committed and before its answer leaves (and
 * before the user's cache generation moves), takes the primary's WAL flush position from a query
 * started after the commit: a position at or past the commit record (see readPrimaryWalPosition,
 * db/replication.repository.ts). It raises the user's stored position to it (a maximum: a slower
 * writer never lowers it), in the shared store (Redis, so every process sees it; in-process when
 * there is one process). A reader reads that stored position after reading the user's cache
 * generation. A write acknowledged before the read began raised it first, so the reader sees a
 * position at or past that write's commit, whichever process wrote.
 *
 * A user without a stored position (never written through us, expired, evicted, a Redis that
 * restarted empty, or Redis unreachable) gets a floor: the primary's position from a query started
 * after the reader found nothing, which lies past every commit made before. The reader stores it
 * (raising), so later reads need no primary round trip. A writer never creates a missing entry:
 * its position covers its own commit, not older ones whose entry may have been lost.
 *
 * The cache. A page computed from a replica is stored under the generation read before the stored
 * position; the write that made that generation raised the position before it bumped, so the
 * replica has replayed it and the page is not older than the generation it is cached under.
 *
 * Cost: a primary round trip per write (shared by the writes committed meanwhile), a store round
 * trip per replica read, and a replica status query at most every few milliseconds per replica.
 */

/** A replica whose status is older than this is asked again before a read relies on it. */
const STATUS_MAX_AGE_MS = 1_000;
/** A replica behind a read's position is asked for its position again at most this often. */
const POSITION_REFRESH_MS = 5;
/** A replica that could not be reached is tried again after this long (its reads go elsewhere). */
const DOWN_RETRY_MS = 1_000;
/** How long a user's stored position lives without a read or write refreshing it. */
const POSITION_TTL_SECONDS = 3_600;

/** A WAL position (pg_lsn) as a number: `16/B374D848` is 0x16 << 32 | 0xB374D848. */
export function parseLsn(text: string): bigint {
  const [high, low] = text.split('/');
  if (high === undefined || low === undefined) throw new Error(`not a WAL position: ${text}`);
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** Fixed width, so that string order is numeric order (compared as such in Redis). */
function lsnKey(lsn: bigint): string {
  return lsn.toString(16).padStart(16, '0');
}

/** Where each user's latest write position lives, shared by every process that serves reads. */
export interface PositionStore {
  readonly kind: 'redis' | 'memory';
  get(user: string): Promise<bigint | undefined>;
  /** Raises the user's position to `lsn`; with `onlyIfPresent`, a missing entry stays missing. */
  raise(user: string, lsn: bigint, onlyIfPresent: boolean): Promise<void>;
  /** Drops the user's position: the next read takes a floor from the primary. */
  forget(user: string): Promise<void>;
  close(): Promise<void>;
}

export function memoryPositionStore(maxEntries: number): PositionStore {
  const positions = new LRUCache<string, bigint>({
    max: maxEntries,
    ttl: POSITION_TTL_SECONDS * 1000,
  });
  return {
    kind: 'memory',
    async get(user) {
      return positions.get(user);
    },
    async raise(user, lsn, onlyIfPresent) {
      const current = positions.get(user);
      if (current === undefined && onlyIfPresent) return;
      if (current === undefined || current < lsn) positions.set(user, lsn);
    },
    async forget(user) {
      positions.delete(user);
    },
    async close() {
      positions.clear();
    },
  };
}

const RAISE_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if not cur then
  if ARGV[2] == '1' then return 0 end
elseif cur >= ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1`;

/** Positions in Redis: one key per user, in the user's hash slot (cluster-safe). */
export function redisPositionStore(client: Redis | Cluster, prefix: string): PositionStore {
  const keyOf = (user: string) =>
    `${prefix}:{u:${createHash('sha256').update(user).digest('base64url').slice(0, 22)}}:lsn`;
  return {
    kind: 'redis',
    async get(user) {
      const value = await client.get(keyOf(user));
      return value === null ? undefined : BigInt(`0x${value}`);
    },
    async raise(user, lsn, onlyIfPresent) {
      await client.eval(
        RAISE_SCRIPT,
        1,
        keyOf(user),
        lsnKey(lsn),
        onlyIfPresent ? '1' : '0',
        String(POSITION_TTL_SECONDS),
      );
    },
    async forget(user) {
      await client.del(keyOf(user));
    },
    async close() {},
  };
}

/**
 * The primary's WAL position from a query that starts after the call: concurrent callers share
 * one query (the one queued behind the query in flight), so under load it costs one round trip
 * per round trip, not one per caller.
 */
function primaryPositions(primary: Db) {
  let inFlight: Promise<bigint> | undefined;
  let queued: Promise<bigint> | undefined;
  function start(): Promise<bigint> {
    const query = readPrimaryWalPosition(primary).then((lsn) => parseLsn(lsn ?? '0/0'));
    const tracked: Promise<bigint> = query.finally(() => {
      if (inFlight === tracked) inFlight = undefined;
    });
    inFlight = tracked;
    return tracked;
  }
  return function after(): Promise<bigint> {
    if (!inFlight) return start();
    // The query in flight may have started before this caller's commit: wait for the next one.
    queued ??= inFlight
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}

type ReplicaState = 'ok' | 'down' | 'lagging' | 'paused' | 'not_standby';

interface Replica {
  readonly name: string;
  readonly handle: DatabaseHandle;
  state: ReplicaState;
  /** Replayed WAL position at the last status query: a lower bound of what it has now. */
  position: bigint;
  lagMs: number;
  checkedAt: number;
  refreshing: Promise<void> | undefined;
}

/** Runs the reads that may use a replica, and hears about the writes they must not miss. */
export interface ReadRouter {
  /** Runs `work` on a replica that has replayed every acknowledged write of `user`, or the primary. */
  forUser<T>(user: string, work: (db: Db) => Promise<T>): Promise<T>;
  /**
   * A read whose user is known from its answer (a record by id): tried on a replica, kept only if
   * that replica had replayed its user's writes; read from the primary otherwise (or if absent).
   */
  byRecord<T>(
    work: (db: Db) => Promise<T | undefined>,
    userOf: (row: T) => string,
  ): Promise<T | undefined>;
  /** Call after a write of `user` committed, before its cache bump and its answer. */
  written(user: string): Promise<void>;
  /** Per replica: ok, down, lagging, paused or not_standby (asked afresh). */
  check(): Promise<Record<string, string>>;
  close(): Promise<void>;
}

/** No replicas: every read on the primary, nothing to record. */
export function primaryOnly(primary: Db): ReadRouter {
  return {
    forUser: (_user, work) => work(primary),
    byRecord: (work) => work(primary),
    async written() {},
    async check() {
      return {};
    },
    async close() {},
  };
}

export interface ReadReplicaOptions {
  primary: Db;
  urls: readonly string[];
  positions: PositionStore;
  maxLagMs: number;
  poolSize: number;
  statementTimeoutMs: number;
  connectTimeoutMs: number;
  logger: FastifyBaseLogger;
  registry?: Registry | undefined;
}

/** Opens a pool per replica (connections are made on first use: a replica that is down is skipped). */
export async function openReadReplicas(options: ReadReplicaOptions): Promise<ReadRouter> {
  const { primary, positions, logger } = options;
  const registers = options.registry ? [options.registry] : [];
  const reads = new Counter({
    name: 'fido_db_reads_total',
    help: 'Reads that may use a replica, by where they ran (primary, replica_1, …)',
    labelNames: ['target'],
    registers,
  });
  const fallbacks = new Counter({
    name: 'fido_db_read_fallbacks_total',
    help:
      'Reads sent to the primary instead of a replica, by reason (behind: not yet replayed the ' +
      "user's latest write; down, lagging, paused: no usable replica; error: failed on a replica)",
    labelNames: ['reason'],
    registers,
  });
  const positionErrors = new Counter({
    name: 'fido_db_read_position_errors_total',
    help: 'Write positions that could not be read or stored (reads then use a floor, or the primary)',
    registers,
  });
  const outage = outageLog(
    logger,
    { store: positions.kind },
    {
      down: 'write positions unavailable; reads use the primary position',
      up: 'write positions recovered',
    },
  );

  const replicas: Replica[] = [];
  for (const [i, url] of options.urls.entries()) {
    const handle = await openDatabase({
      databaseUrl: url,
      dataDir: 'unused',
      poolSize: options.poolSize,
      statementTimeoutMs: options.statementTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      logger,
    });
    replicas.push({
      name: `replica_${i + 1}`,
      handle,
      state: 'down',
      position: 0n,
      lagMs: 0,
      checkedAt: 0,
      refreshing: undefined,
    });
  }
  for (const replica of replicas) reads.inc({ target: replica.name }, 0);
  reads.inc({ target: 'primary' }, 0);
  const primaryPosition = primaryPositions(primary);
  let turn = 0;

  function refresh(replica: Replica): Promise<void> {
    replica.refreshing ??= (async () => {
      const before = replica.state;
      try {
        const row = await readReplicaStatus(replica.handle.db);
        if (!row?.standby || row.replay === null) {
          replica.state = 'not_standby';
        } else {
          replica.position = parseLsn(row.replay);
          const caughtUp = row.receive === null || parseLsn(row.receive) <= replica.position;
          replica.lagMs = caughtUp ? 0 : Math.max(0, Number(row.sinceMs ?? 0));
          replica.state = row.paused
            ? 'paused'
            : replica.lagMs > options.maxLagMs
              ? 'lagging'
              : 'ok';
        }
      } catch (error) {
        replica.state = 'down';
        if (before !== 'down')
          logger.warn({ err: error, replica: replica.name }, 'read replica unreachable');
      } finally {
        replica.checkedAt = Date.now();
        replica.refreshing = undefined;
      }
      if (before !== replica.state && replica.state !== 'down') {
        logger.info({ replica: replica.name, state: replica.state }, 'read replica state');
      }
    })();
    return replica.refreshing;
  }

  /** A usable replica that has replayed `need`, or the reason there is none. */
  async function choose(need: bigint): Promise<Replica | string> {
    let reason = 'behind';
    for (let k = 0; k < replicas.length; k += 1) {
      const replica = replicas[(turn + k) % replicas.length]!;
      const age = Date.now() - replica.checkedAt;
      const stale = replica.state === 'down' ? age >= DOWN_RETRY_MS : age >= STATUS_MAX_AGE_MS;
      if (stale) await refresh(replica);
      if (replica.state !== 'ok') {
        reason = replica.state === 'not_standby' ? 'down' : replica.state;
        continue;
      }
      if (replica.position < need && Date.now() - replica.checkedAt >= POSITION_REFRESH_MS) {
        await refresh(replica);
      }
      if (replica.state === 'ok' && replica.position >= need) {
        turn = (turn + k + 1) % replicas.length;
        return replica;
      }
      reason = replica.state === 'ok' ? 'behind' : replica.state;
    }
    return reason;
  }

  /** The position a replica must have replayed to serve `user`: stored, or a fresh floor. */
  async function requirement(user: string): Promise<bigint> {
    let stored: bigint | undefined;
    try {
      stored = await positions.get(user);
      outage.succeeded();
    } catch (error) {
      positionErrors.inc();
      outage.failed(error);
    }
    if (stored !== undefined) return stored;
    const floor = await primaryPosition();
    positions.raise(user, floor, false).catch(() => positionErrors.inc());
    return floor;
  }

  /** Errors after which the read is tried on the primary: the replica's, not the query's. */
  function replicaFailed(error: unknown): boolean {
    const code = (error as { code?: unknown }).code;
    // 40001: cancelled by a conflict with recovery (the standby replayed a cleanup it needed).
    return isDatabaseUnavailable(error) || code === '40001';
  }

  async function onReplica<T>(
    replica: Replica,
    work: (db: Db) => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false }> {
    try {
      const value = await work(replica.handle.db);
      return { ok: true, value };
    } catch (error) {
      if (!replicaFailed(error)) throw error;
      if (isDatabaseUnavailable(error)) {
        replica.state = 'down';
        replica.checkedAt = Date.now();
      }
      fallbacks.inc({ reason: 'error' });
      logger.warn(
        { err: error, replica: replica.name },
        'read failed on a replica; reading the primary',
      );
      return { ok: false };
    }
  }

  async function onPrimary<T>(work: (db: Db) => Promise<T>): Promise<T> {
    reads.inc({ target: 'primary' });
    return work(primary);
  }

  return {
    async forUser(user, work) {
      const need = await requirement(user);
      const chosen = await choose(need);
      if (typeof chosen === 'string') {
        fallbacks.inc({ reason: chosen });
        return onPrimary(work);
      }
      const result = await onReplica(chosen, work);
      if (!result.ok) return onPrimary(work);
      reads.inc({ target: chosen.name });
      return result.value;
    },

    async byRecord(work, userOf) {
      const chosen = await choose(0n);
      if (typeof chosen === 'string') {
        fallbacks.inc({ reason: chosen });
        return onPrimary(work);
      }
      // Taken before the query: the query's snapshot is at least this far along.
      const replayed = chosen.position;
      const result = await onReplica(chosen, work);
      if (!result.ok) return onPrimary(work);
      if (result.value === undefined) {
        // Absent there: perhaps created since. Whose it is cannot be known, so the primary says.
        fallbacks.inc({ reason: 'behind' });
        return onPrimary(work);
      }
      if (replayed < (await requirement(userOf(result.value)))) {
        fallbacks.inc({ reason: 'behind' });
        return onPrimary(work);
      }
      reads.inc({ target: chosen.name });
      return result.value;
    },

    async written(user) {
      let lsn: bigint | undefined;
      try {
        lsn = await primaryPosition();
      } catch (error) {
        // The write committed but its position is unknown: without an entry, the next read of
        // this user takes a floor from the primary (after the write), never an older position.
        positionErrors.inc();
        logger.warn({ err: error }, 'write position unknown; the user reads from a fresh floor');
      }
      try {
        await (lsn === undefined ? positions.forget(user) : positions.raise(user, lsn, true));
        outage.succeeded();
      } catch (error) {
        positionErrors.inc();
        outage.failed(error);
      }
    },

    async check() {
      await Promise.all(replicas.map((replica) => refresh(replica)));
      return Object.fromEntries(replicas.map((replica) => [replica.name, replica.state]));
    },

    async close() {
      await Promise.all(replicas.map((replica) => replica.handle.close()));
      await positions.close();
    },
  };
}
