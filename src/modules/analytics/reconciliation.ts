import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../../db/client.js';
import type { Metrics } from '../../platform/metrics.js';
import { readJobState, writeJobState } from '../../db/job-state.repository.js';
import { eventUsersAfter, nextUsers } from './reconciliation.repository.js';
import {
  addRollupDeltas,
  deleteEmptyRollups,
  lockUserRollups,
  readStoredRollups,
  recomputeRollups,
  type RollupFigures,
} from './rollups.repository.js';
import { EVENTS_PER_USER_BATCH } from './analytics.limits.js';

/** How far the stored rollups were from the raw rows. Zero is the only right answer. */
export interface Drift {
  /** Rollup rows that were wrong, missing or left over. */
  rows: number;
  /** Sum of |stored − actual| transaction counts over those rows. */
  count: number;
  /** Sum of |stored − actual| credit and debit totals, in minor units. */
  amountMinor: bigint;
}

const NO_DRIFT: Drift = { rows: 0, count: 0, amountMinor: 0n };

/** A rollup row's identity: its currency, and its day for a daily row. */
const keyOf = (row: RollupFigures) =>
  row.day === null ? row.currency : `${row.currency}|${row.day}`;

const abs = (n: bigint) => (n < 0n ? -n : n);

/** What turns `stored` into `actual` (either may be missing), measure by measure. */
function repairOf(actual: RollupFigures | undefined, stored: RollupFigures | undefined) {
  const row = actual ?? stored;
  if (!row) return undefined;
  return {
    currency: row.currency,
    day: row.day,
    transactionCount: (actual?.transactionCount ?? 0) - (stored?.transactionCount ?? 0),
    creditCount: (actual?.creditCount ?? 0) - (stored?.creditCount ?? 0),
    debitCount: (actual?.debitCount ?? 0) - (stored?.debitCount ?? 0),
    creditTotalMinor: (actual?.creditTotalMinor ?? 0n) - (stored?.creditTotalMinor ?? 0n),
    debitTotalMinor: (actual?.debitTotalMinor ?? 0n) - (stored?.debitTotalMinor ?? 0n),
    // A repair leaves a row's last write as it was; a row it creates is written now.
    updatedAt: stored?.updatedAt,
  } satisfies RollupFigures;
}

/**
 * Compares stored rows with recomputed ones, key by key: the drift, and the repairs that turn
 * what is stored into what should be (a row backed by no transaction goes to zero).
 */
function compare(stored: RollupFigures[], actual: RollupFigures[]) {
  const storedByKey = new Map(stored.map((r) => [keyOf(r), r]));
  const actualByKey = new Map(actual.map((r) => [keyOf(r), r]));
  const drift: Drift = { ...NO_DRIFT };
  const repairs: RollupFigures[] = [];
  for (const key of new Set([...actualByKey.keys(), ...storedByKey.keys()])) {
    const want = actualByKey.get(key);
    const repair = repairOf(want, storedByKey.get(key));
    // A stored row no transaction backs is drift even when it holds zeros: it goes.
    const right =
      want !== undefined &&
      repair?.transactionCount === 0 &&
      repair.creditCount === 0 &&
      repair.debitCount === 0 &&
      repair.creditTotalMinor === 0n &&
      repair.debitTotalMinor === 0n;
    if (!repair || right) continue;
    repairs.push(repair);
    drift.rows += 1;
    drift.count += Math.abs(repair.transactionCount);
    drift.amountMinor += abs(repair.creditTotalMinor) + abs(repair.debitTotalMinor);
  }
  return { drift, repairs };
}

function add(a: Drift, b: Drift): Drift {
  return {
    rows: a.rows + b.rows,
    count: a.count + b.count,
    amountMinor: a.amountMinor + b.amountMinor,
  };
}

/**
 * Recomputes one user's rollups from the raw rows and repairs any difference, holding the user's
 * rollup lock exclusively so no write is half-counted while it looks. A repair adds the
 * difference through the same upserts every write uses.
 */
export async function reconcileUser(db: Db, userId: string, timeZone: string): Promise<Drift> {
  return db.transaction(async (dbTx) => {
    await lockUserRollups(dbTx, userId, 'exclusive');
    const actual = await recomputeRollups(dbTx, userId, timeZone);
    const stored = await readStoredRollups(dbTx, userId);
    const { drift, repairs } = compare(stored, actual);
    if (repairs.length > 0) {
      await deleteEmptyRollups(dbTx, await addRollupDeltas(dbTx, userId, repairs));
    }
    return drift;
  });
}

export interface ReconciliationOptions {
  timeZone: string;
  /** Users recomputed per pass (recently written, and the rolling sweep). */
  batchSize: number;
  logger?: Pick<FastifyBaseLogger, 'info' | 'warn'>;
  metrics?: Metrics;
  /** Called for each user whose rollups were repaired: cached answers built on them are wrong. */
  invalidate?: (userId: string) => Promise<boolean>;
}

export interface ReconciliationResult {
  users: number;
  drift: Drift;
  /** Users whose recompute failed (logged); the run went on without them. */
  failedUsers: number;
  /** True when the rolling sweep reached the last user and starts over next time. */
  sweepWrapped: boolean;
}

const EVENTS_CURSOR = 'reconciliation.events_after';
const SWEEP_CURSOR = 'reconciliation.sweep_after';

/**
 * One run of the reconciliation job: the users written since the previous run (from the event
 * log), then the next slice of a rolling sweep over every user. Each bounded by `batchSize`.
 */
export async function runReconciliation(
  db: Db,
  options: ReconciliationOptions,
): Promise<ReconciliationResult> {
  const eventsAfter = (await readJobState(db, EVENTS_CURSOR)) ?? '0';
  const events = await eventUsersAfter(db, eventsAfter, options.batchSize * EVENTS_PER_USER_BATCH);
  // The recent users are those of the events read, up to batchSize users; the cursor stops at
  // the last event of an included user, so the events of users left out are read next time.
  const recentSet = new Set<string>();
  let lastEvent: (typeof events)[number] | undefined;
  for (const event of events) {
    if (!recentSet.has(event.userId) && recentSet.size >= options.batchSize) break;
    recentSet.add(event.userId);
    lastEvent = event;
  }
  const recent = [...recentSet];

  const sweepAfter = (await readJobState(db, SWEEP_CURSOR)) ?? '';
  const sweep = await nextUsers(db, sweepAfter, options.batchSize);
  const sweepWrapped = sweep.length < options.batchSize;

  let drift: Drift = { ...NO_DRIFT };
  const users = [...new Set([...recent, ...sweep])];
  let failedUsers = 0;
  for (const userId of users) {
    const found = await reconcileAndReport(db, userId, options);
    if (found) drift = add(drift, found);
    else failedUsers += 1;
  }

  if (lastEvent) await writeJobState(db, EVENTS_CURSOR, String(lastEvent.sequence));
  await writeJobState(db, SWEEP_CURSOR, sweepWrapped ? '' : (sweep.at(-1) ?? ''));

  options.metrics?.reconciliationRuns.inc();
  options.metrics?.reconciliationUsers.inc(users.length);
  options.metrics?.reconciliationDriftRows.inc(drift.rows);
  options.metrics?.reconciliationDriftMinor.inc(Number(drift.amountMinor));
  options.metrics?.reconciliationLastDriftRows.set(drift.rows);
  options.logger?.info(
    {
      users: users.length,
      drift_rows: drift.rows,
      drift_amount_minor: drift.amountMinor.toString(),
      failed_users: failedUsers,
      sweep_wrapped: sweepWrapped,
    },
    'reconciliation finished',
  );
  return { users: users.length, drift, failedUsers, sweepWrapped };
}

/** Every user, batch after batch, until the sweep has seen them all (the CLI's `--all`). */
export async function reconcileAll(
  db: Db,
  options: Pick<ReconciliationOptions, 'timeZone' | 'batchSize' | 'logger' | 'invalidate'>,
): Promise<{ users: number; drift: Drift; failedUsers: number }> {
  let after = '';
  const total = { users: 0, drift: { ...NO_DRIFT }, failedUsers: 0 };
  for (;;) {
    const users = await nextUsers(db, after, options.batchSize);
    for (const userId of users) {
      const found = await reconcileAndReport(db, userId, options);
      total.users += 1;
      if (found) total.drift = add(total.drift, found);
      else total.failedUsers += 1;
    }
    if (users.length < options.batchSize) return total;
    after = users.at(-1) ?? '';
  }
}

/**
 * Reconciles one user, invalidates their cached answers when something was repaired, and logs
 * the drift. A failure (a timeout on a huge user, say) is logged and answered with undefined, so
 * one user never stops the run for everyone else.
 */
async function reconcileAndReport(
  db: Db,
  userId: string,
  options: Pick<ReconciliationOptions, 'timeZone' | 'logger' | 'invalidate'>,
): Promise<Drift | undefined> {
  let found: Drift;
  try {
    found = await reconcileUser(db, userId, options.timeZone);
  } catch (error) {
    options.logger?.warn({ err: error, user_id: userId }, 'reconciliation failed for a user');
    return undefined;
  }
  if (found.rows > 0) {
    const invalidated = (await options.invalidate?.(userId)) ?? true;
    options.logger?.warn(
      {
        user_id: userId,
        drift_rows: found.rows,
        drift_count: found.count,
        drift_amount_minor: found.amountMinor.toString(),
        cache_invalidated: invalidated,
      },
      'rollup drift repaired',
    );
  }
  return found;
}
