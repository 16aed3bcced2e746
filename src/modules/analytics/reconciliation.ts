import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import { queryRows, type Db } from '../../db/client.js';
import type { Metrics } from '../../platform/metrics.js';
import { readJobState, writeJobState } from '../../db/job-state.repository.js';
import { lockUserRollups } from './rollups.js';

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

interface RollupRow {
  key: string;
  currency: string;
  day?: string;
  count: number;
  credit: number;
  debit: number;
  creditMinor: bigint;
  debitMinor: bigint;
}

type RawRollup = {
  currency: string;
  day?: string;
  n: string | number;
  cn: string | number;
  dn: string | number;
  ct: string | number;
  dt: string | number;
};

function toRow(raw: RawRollup): RollupRow {
  return {
    key: raw.day === undefined ? raw.currency : `${raw.currency}|${raw.day}`,
    currency: raw.currency,
    ...(raw.day === undefined ? {} : { day: raw.day }),
    count: Number(raw.n),
    credit: Number(raw.cn),
    debit: Number(raw.dn),
    creditMinor: BigInt(raw.ct),
    debitMinor: BigInt(raw.dt),
  };
}

const abs = (n: bigint) => (n < 0n ? -n : n);

/** Compares stored rows with recomputed ones, key by key. */
function compare(stored: RollupRow[], actual: RollupRow[]) {
  const byKey = new Map(stored.map((r) => [r.key, r]));
  const drift: Drift = { ...NO_DRIFT };
  const wrong: RollupRow[] = [];
  for (const row of actual) {
    const have = byKey.get(row.key);
    byKey.delete(row.key);
    const same =
      have &&
      have.count === row.count &&
      have.credit === row.credit &&
      have.debit === row.debit &&
      have.creditMinor === row.creditMinor &&
      have.debitMinor === row.debitMinor;
    if (same) continue;
    wrong.push(row);
    drift.rows += 1;
    drift.count += Math.abs((have?.count ?? 0) - row.count);
    drift.amountMinor +=
      abs((have?.creditMinor ?? 0n) - row.creditMinor) +
      abs((have?.debitMinor ?? 0n) - row.debitMinor);
  }
  // Whatever is left is stored but backed by no transaction.
  for (const row of byKey.values()) {
    drift.rows += 1;
    drift.count += row.count;
    drift.amountMinor += abs(row.creditMinor) + abs(row.debitMinor);
  }
  return { drift, wrong, leftover: [...byKey.values()] };
}

function add(a: Drift, b: Drift): Drift {
  return {
    rows: a.rows + b.rows,
    count: a.count + b.count,
    amountMinor: a.amountMinor + b.amountMinor,
  };
}

const AGGREGATES = sql`count(*) as n,
  count(*) filter (where transaction_type = 'credit') as cn,
  count(*) filter (where transaction_type = 'debit') as dn,
  coalesce(sum(amount_minor) filter (where transaction_type = 'credit'), 0)::text as ct,
  coalesce(sum(amount_minor) filter (where transaction_type = 'debit'), 0)::text as dt`;

/**
 * Recomputes one user's rollups from the raw rows and repairs any difference, holding the user's
 * rollup lock exclusively so no write is half-counted while it looks.
 */
export async function reconcileUser(db: Db, userId: string, timeZone: string): Promise<Drift> {
  return db.transaction(async (dbTx) => {
    await lockUserRollups(dbTx, userId, 'exclusive');
    const actualTotals = (
      await queryRows<RawRollup>(
        dbTx,
        sql`select currency, ${AGGREGATES} from transactions where user_id = ${userId} group by currency`,
      )
    ).map(toRow);
    const storedTotals = (
      await queryRows<RawRollup>(
        dbTx,
        sql`select currency, transaction_count as n, credit_count as cn, debit_count as dn,
          credit_total_minor::text as ct, debit_total_minor::text as dt
          from user_stats where user_id = ${userId}`,
      )
    ).map(toRow);
    const actualDays = (
      await queryRows<RawRollup>(
        dbTx,
        sql`select currency, (transaction_date at time zone ${timeZone})::date::text as day, ${AGGREGATES}
          from transactions where user_id = ${userId} group by 1, 2`,
      )
    ).map(toRow);
    const storedDays = (
      await queryRows<RawRollup>(
        dbTx,
        sql`select currency, day::text as day, transaction_count as n, credit_count as cn,
          debit_count as dn, credit_total_minor::text as ct, debit_total_minor::text as dt
          from user_daily_stats where user_id = ${userId}`,
      )
    ).map(toRow);

    const totals = compare(storedTotals, actualTotals);
    const days = compare(storedDays, actualDays);
    for (const row of totals.wrong) {
      await dbTx.execute(sql`
        insert into user_stats (user_id, currency, transaction_count, credit_count, debit_count,
          credit_total_minor, debit_total_minor, updated_at)
        values (${userId}, ${row.currency}, ${row.count}, ${row.credit}, ${row.debit},
          ${row.creditMinor.toString()}::numeric, ${row.debitMinor.toString()}::numeric, now())
        on conflict (user_id, currency) do update set
          transaction_count = excluded.transaction_count, credit_count = excluded.credit_count,
          debit_count = excluded.debit_count, credit_total_minor = excluded.credit_total_minor,
          debit_total_minor = excluded.debit_total_minor`);
    }
    for (const row of totals.leftover) {
      await dbTx.execute(
        sql`delete from user_stats where user_id = ${userId} and currency = ${row.currency}`,
      );
    }
    for (const row of days.wrong) {
      await dbTx.execute(sql`
        insert into user_daily_stats (user_id, currency, day, transaction_count, credit_count,
          debit_count, credit_total_minor, debit_total_minor)
        values (${userId}, ${row.currency}, ${row.day}::date, ${row.count}, ${row.credit}, ${row.debit},
          ${row.creditMinor.toString()}::numeric, ${row.debitMinor.toString()}::numeric)
        on conflict (user_id, currency, day) do update set
          transaction_count = excluded.transaction_count, credit_count = excluded.credit_count,
          debit_count = excluded.debit_count, credit_total_minor = excluded.credit_total_minor,
          debit_total_minor = excluded.debit_total_minor`);
    }
    for (const row of days.leftover) {
      await dbTx.execute(sql`delete from user_daily_stats
        where user_id = ${userId} and currency = ${row.currency} and day = ${row.day}::date`);
    }
    return add(totals.drift, days.drift);
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
/** Events read per run to find recently written users: bounded, the rest wait for the next run. */
const EVENTS_PER_USER_BATCH = 10;

/**
 * One run of the reconciliation job: the users written since the previous run (from the event
 * log), then the next slice of a rolling sweep over every user. Each bounded by `batchSize`.
 */
export async function runReconciliation(
  db: Db,
  options: ReconciliationOptions,
): Promise<ReconciliationResult> {
  const eventsAfter = (await readJobState(db, EVENTS_CURSOR)) ?? '0';
  const events = await queryRows<{ sequence: string | number; user_id: string }>(
    db,
    sql`select sequence, user_id from events where sequence > ${eventsAfter}::bigint
      order by sequence limit ${options.batchSize * EVENTS_PER_USER_BATCH}`,
  );
  // The recent users are those of the events read, up to batchSize users; the cursor stops at
  // the last event of an included user, so the events of users left out are read next time.
  const recentSet = new Set<string>();
  let lastEvent: (typeof events)[number] | undefined;
  for (const event of events) {
    if (!recentSet.has(event.user_id) && recentSet.size >= options.batchSize) break;
    recentSet.add(event.user_id);
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

/**
 * The next `limit` user ids after `after`, among users with transactions or with rollups (a
 * rollup without transactions is drift too). Loose index scans: cost grows with users, not rows.
 */
async function nextUsers(db: Db, after: string, limit: number): Promise<string[]> {
  const rows = await queryRows<{ user_id: string }>(
    db,
    sql`
    with recursive from_rows as (
      (select user_id from transactions where user_id > ${after} order by user_id limit 1)
      union all
      select (select t.user_id from transactions t where t.user_id > r.user_id order by t.user_id limit 1)
      from from_rows r where r.user_id is not null
    ), from_rollups as (
      (select user_id from user_stats where user_id > ${after} order by user_id limit 1)
      union all
      select (select s.user_id from user_stats s where s.user_id > r.user_id order by s.user_id limit 1)
      from from_rollups r where r.user_id is not null
    )
    select user_id from (
      (select user_id from from_rows where user_id is not null limit ${limit})
      union
      (select user_id from from_rollups where user_id is not null limit ${limit})
    ) u order by user_id limit ${limit}`,
  );
  return rows.map((r) => r.user_id);
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
