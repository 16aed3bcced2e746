import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';

/** What a transaction contributes to the rollups. */
export interface Contribution {
  userId: string;
  currency: string;
  transactionDate: Date;
  transactionType: 'credit' | 'debit';
  amountMinor: bigint;
}

/** First key of the per-user rollup lock: writers take it shared, reconciliation exclusive. */
export const ROLLUP_LOCK_CLASS = 0x46_49_44_4f; // "FIDO"

/**
 * The two ends of the rollup upserts, shared by every statement that moves the rollups (here, and
 * the single-statement create): the rows given are deltas, added to what the rows already hold.
 * Both tables alias as `s`; the select between the ends yields the columns in this order.
 */
/**
 * What each transaction adds to the rollups, selected from any relation with the transactions'
 * columns (a just-inserted set, say): the rows `v(user_id, currency, ts, n, cn, dn, ct, dt)` that
 * the upserts below sum.
 */
export const CONTRIBUTION_COLUMNS = `user_id, currency, transaction_date as ts, 1 as n,
    (transaction_type = 'credit')::int as cn, (transaction_type = 'debit')::int as dn,
    case when transaction_type = 'credit' then amount_minor::numeric else 0 end as ct,
    case when transaction_type = 'debit' then amount_minor::numeric else 0 end as dt`;

export const TOTALS_UPSERT = {
  insert: `insert into user_stats as s (user_id, currency, transaction_count, credit_count,
      debit_count, credit_total_minor, debit_total_minor, updated_at)`,
  onConflict: `on conflict (user_id, currency) do update set
      transaction_count = s.transaction_count + excluded.transaction_count,
      credit_count = s.credit_count + excluded.credit_count,
      debit_count = s.debit_count + excluded.debit_count,
      credit_total_minor = s.credit_total_minor + excluded.credit_total_minor,
      debit_total_minor = s.debit_total_minor + excluded.debit_total_minor,
      updated_at = excluded.updated_at`,
} as const;

export const DAYS_UPSERT = {
  insert: `insert into user_daily_stats as s (user_id, currency, day, transaction_count,
      credit_count, debit_count, credit_total_minor, debit_total_minor)`,
  onConflict: `on conflict (user_id, currency, day) do update set
      transaction_count = s.transaction_count + excluded.transaction_count,
      credit_count = s.credit_count + excluded.credit_count,
      debit_count = s.debit_count + excluded.debit_count,
      credit_total_minor = s.credit_total_minor + excluded.credit_total_minor,
      debit_total_minor = s.debit_total_minor + excluded.debit_total_minor`,
} as const;

/**
 * Takes the user's rollup lock for the rest of the database transaction: shared for writers (they
 * never wait on each other), exclusive for reconciliation (which must see no write half-applied).
 */
export async function lockUserRollups(
  dbTx: Db,
  userId: string,
  mode: 'shared' | 'exclusive',
): Promise<void> {
  const fn = mode === 'shared' ? sql`pg_advisory_xact_lock_shared` : sql`pg_advisory_xact_lock`;
  await dbTx.execute(sql`select ${fn}(${ROLLUP_LOCK_CLASS}, hashtext(${userId}))`);
}

/**
 * Moves the rollups by what `removed` contributed and what `added` contributes, inside the caller's
 * database transaction. Rows are locked in key order (user, currency, day), so concurrent writers
 * never deadlock; rows left with no transactions are deleted.
 */
export async function applyRollups(
  dbTx: Db,
  change: { removed?: Contribution; added?: Contribution },
  timeZone: string,
): Promise<void> {
  const rows = [
    ...(change.removed ? [deltaValues(change.removed, -1)] : []),
    ...(change.added ? [deltaValues(change.added, 1)] : []),
  ];
  const first = change.added ?? change.removed;
  if (!first) return;
  await lockUserRollups(dbTx, first.userId, 'shared');
  const values = sql.join(rows, sql`, `);

  const totals = await queryRows<{ user_id: string; currency: string; transaction_count: number }>(
    dbTx,
    sql`
    ${sql.raw(TOTALS_UPSERT.insert)}
    select user_id, currency, sum(n), sum(cn), sum(dn), sum(ct), sum(dt), now()
    from (values ${values}) as v(user_id, currency, ts, n, cn, dn, ct, dt)
    group by user_id, currency
    order by user_id, currency
    ${sql.raw(TOTALS_UPSERT.onConflict)}
    returning user_id, currency, transaction_count`,
  );
  const days = await queryRows<{
    user_id: string;
    currency: string;
    day: string;
    transaction_count: number;
  }>(
    dbTx,
    sql`
    ${sql.raw(DAYS_UPSERT.insert)}
    select user_id, currency, (ts at time zone ${timeZone})::date, sum(n), sum(cn), sum(dn),
      sum(ct), sum(dt)
    from (values ${values}) as v(user_id, currency, ts, n, cn, dn, ct, dt)
    group by 1, 2, 3
    order by 1, 2, 3
    ${sql.raw(DAYS_UPSERT.onConflict)}
    returning user_id, currency, day::text as day, transaction_count`,
  );

  const emptyTotals = totals.filter((r) => Number(r.transaction_count) === 0);
  if (emptyTotals.length > 0) {
    await dbTx.execute(
      sql`delete from user_stats where transaction_count = 0 and (user_id, currency) in (${keyList(
        emptyTotals.map((r) => sql`(${r.user_id}, ${r.currency})`),
      )})`,
    );
  }
  const emptyDays = days.filter((r) => Number(r.transaction_count) === 0);
  if (emptyDays.length > 0) {
    await dbTx.execute(
      sql`delete from user_daily_stats where transaction_count = 0 and (user_id, currency, day) in (${keyList(
        emptyDays.map((r) => sql`(${r.user_id}, ${r.currency}, ${r.day}::date)`),
      )})`,
    );
  }
}

function keyList(keys: SQL[]): SQL {
  return sql.join(keys, sql`, `);
}

function deltaValues(c: Contribution, sign: 1 | -1): SQL {
  const credit = c.transactionType === 'credit';
  const amount = (BigInt(sign) * c.amountMinor).toString();
  return sql`(${c.userId}::text, ${c.currency}::text, ${c.transactionDate.toISOString()}::timestamptz,
    ${sign}::int, ${credit ? sign : 0}::int, ${credit ? 0 : sign}::int,
    ${credit ? amount : '0'}::numeric, ${credit ? '0' : amount}::numeric)`;
}

/** Whether moving from `before` to `after` changes what the rollups hold. */
export function changesRollups(before: Contribution, after: Contribution): boolean {
  return (
    before.currency !== after.currency ||
    before.transactionType !== after.transactionType ||
    before.amountMinor !== after.amountMinor ||
    before.transactionDate.getTime() !== after.transactionDate.getTime()
  );
}
