import { sql, type Column, type SQL, type SQLWrapper } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { transactions, userDailyStats, userStats } from '../../db/schema/index.js';
import { bare, columnList } from '../../db/sql.js';

/** First key of the per-user rollup lock: writers take it shared, reconciliation exclusive. */
export const ROLLUP_LOCK_CLASS = 0x46_49_44_4f; // "FIDO"

type TransactionRow = typeof transactions.$inferSelect;

/** The fields of a transaction its contribution to the rollups depends on, and only those. */
export const CONTRIBUTION_FIELDS = [
  'userId',
  'currency',
  'transactionDate',
  'transactionType',
  'amountMinor',
] as const satisfies readonly (keyof TransactionRow)[];

/** What the rollups know of a transaction. */
export type Contribution = Pick<TransactionRow, (typeof CONTRIBUTION_FIELDS)[number]>;

/**
 * The transactions' columns `contributions` reads, as a column list: what a statement that
 * writes transactions returns for their rollups.
 */
export const CONTRIBUTION_INPUTS = columnList(...CONTRIBUTION_FIELDS.map((f) => transactions[f]));

/** The figures both rollup tables keep, under the same column names. */
export const MEASURES = [
  'transactionCount',
  'creditCount',
  'debitCount',
  'creditTotalMinor',
  'debitTotalMinor',
] as const;
type Measure = (typeof MEASURES)[number];
type RollupTable = typeof userStats | typeof userDailyStats;

const columns = (list: readonly Column[]) => columnList(...list);
const measureColumns = (table: RollupTable) => MEASURES.map((m) => table[m]);
const TOTALS_KEY = [userStats.userId, userStats.currency];
const DAYS_KEY = [userDailyStats.userId, userDailyStats.currency, userDailyStats.day];

/** The calendar day in `timeZone` that an instant falls on: the day a rollup counts it in. */
export function localDay(instant: SQLWrapper, timeZone: SQLWrapper): SQL {
  return sql`((${instant}) at time zone ${timeZone})::date`;
}

/**
 * What each transaction adds to the rollups: the one definition that every write (create,
 * update, delete, import, the bench's bulk load), the reconciliation's recomputation and the range
 * edges use. A select over `rows` (a from-item whose columns are named as the transactions'
 * columns) giving each row's rollup key (user, currency, local day) and its measures, named as
 * the rollups' columns. A `sign` expression of -1 (per row) takes a contribution away.
 */
export function contributions(rows: SQL, timeZone: SQL, sign?: SQL): SQL {
  const t = transactions;
  const isCredit = sql`${bare(t.transactionType)} = 'credit'`;
  const isDebit = sql`${bare(t.transactionType)} = 'debit'`;
  const amount = sql`${bare(t.amountMinor)}::numeric`;
  const measures: Record<Measure, SQL> = {
    transactionCount: sql`1`,
    creditCount: sql`(${isCredit})::int`,
    debitCount: sql`(${isDebit})::int`,
    creditTotalMinor: sql`case when ${isCredit} then ${amount} else 0 end`,
    debitTotalMinor: sql`case when ${isDebit} then ${amount} else 0 end`,
  };
  const signed = (measure: SQL) => (sign ? sql`${sign} * ${measure}` : measure);
  return sql`select ${bare(t.userId)} as ${bare(userDailyStats.userId)},
    ${bare(t.currency)} as ${bare(userDailyStats.currency)},
    ${localDay(bare(t.transactionDate), timeZone)} as ${bare(userDailyStats.day)},
    ${sql.join(
      MEASURES.map((m) => sql`${signed(measures[m])} as ${bare(userDailyStats[m])}`),
      sql`, `,
    )}
    from ${rows}`;
}

/**
 * Adds the sums of `delta` (rows keyed and named as the rollup's columns) to a rollup table, rows
 * taken in key order so that concurrent writers never deadlock; returns each row's key and its
 * new transaction count.
 */
function upsert(
  table: RollupTable,
  key: readonly Column[],
  delta: SQL,
  options: { updatedAt?: SQL; where?: SQL },
): SQL {
  const stamp = table === userStats ? [userStats.updatedAt] : [];
  const added = [
    ...measureColumns(table).map(
      (column) => sql`${bare(column)} = s.${bare(column)} + excluded.${bare(column)}`,
    ),
    ...stamp.map((column) => sql`${bare(column)} = excluded.${bare(column)}`),
  ];
  return sql`insert into ${table} as s (${columns([...key, ...measureColumns(table), ...stamp])})
    select ${columns(key)}, ${sql.join(
      measureColumns(table).map((column) => sql`sum(${bare(column)})`),
      sql`, `,
    )}${stamp.length > 0 ? sql`, ${options.updatedAt ?? sql`now()`}` : sql``}
    from ${delta}${options.where ? sql` where ${options.where}` : sql``}
    group by ${columns(key)} order by ${columns(key)}
    on conflict (${columns(key)}) do update set ${sql.join(added, sql`, `)}
    returning ${columns(key)}, ${bare(table.transactionCount)}`;
}

/**
 * The two rollup upserts every write runs, as the common table expressions `totals` (per user and
 * currency) then `days` (per user, currency and day), both adding the sums of `delta` (usually
 * `contributions`): the days wait for the totals, so rollup rows are locked in the order every
 * writer locks them. Each returns its rows' keys and new transaction counts.
 */
export function rollupUpserts(delta: SQL): SQL {
  return sql`totals as (${upsert(userStats, TOTALS_KEY, delta, {})}),
  days as (${upsert(userDailyStats, DAYS_KEY, delta, { where: sql`(select count(*) from totals) > 0` })})`;
}

/** Rollup rows a change left with no transaction: they go. */
export interface EmptiedRollups {
  totals: { userId: string; currency: string }[];
  days: { userId: string; currency: string; day: string }[];
}

interface EmptiedRow {
  user_id: string;
  currency: string;
  day: string | null;
}

function emptied(rows: EmptiedRow[]): EmptiedRollups {
  const result: EmptiedRollups = { totals: [], days: [] };
  for (const row of rows) {
    if (row.day === null) result.totals.push({ userId: row.user_id, currency: row.currency });
    else result.days.push({ userId: row.user_id, currency: row.currency, day: row.day });
  }
  return result;
}

/** The keys of the rows the `totals` and `days` upserts left at zero transactions. */
const EMPTIED_TOTALS = sql`select ${bare(userStats.userId)} as user_id,
    ${bare(userStats.currency)} as currency, null::text as day
  from totals where ${bare(userStats.transactionCount)} = 0`;
const EMPTIED_DAYS = sql`select ${bare(userDailyStats.userId)} as user_id,
    ${bare(userDailyStats.currency)} as currency, ${bare(userDailyStats.day)}::text as day
  from days where ${bare(userDailyStats.transactionCount)} = 0`;

/** The call that takes a user's rollup lock: shared or exclusive. */
const rollupLock = (mode: 'shared' | 'exclusive', userId: SQL) =>
  sql`${mode === 'shared' ? sql`pg_advisory_xact_lock_shared` : sql`pg_advisory_xact_lock`}(${ROLLUP_LOCK_CLASS}::int, hashtext(${userId}))`;

/**
 * Takes the user's rollup lock for the rest of the database transaction: shared for writers (they
 * never wait on each other), exclusive for reconciliation (which must see no write half-applied).
 */
export async function lockUserRollups(
  dbTx: Db,
  userId: string,
  mode: 'shared' | 'exclusive',
): Promise<void> {
  await dbTx.execute(sql`select ${rollupLock(mode, sql`${userId}::text`)}`);
}

/** Takes several users' rollup locks, shared, in one fixed order (so two callers never deadlock). */
export async function lockUsersRollups(dbTx: Db, userIds: readonly string[]): Promise<void> {
  await dbTx.execute(sql`select ${rollupLock('shared', sql`u`)}
    from unnest(${sql.param(userIds)}::text[]) as u order by hashtext(u), u`);
}

/** Each contribution field as a typed SQL value (the order is CONTRIBUTION_FIELDS'). */
const CONTRIBUTION_VALUES: {
  [F in (typeof CONTRIBUTION_FIELDS)[number]]: (c: Contribution) => SQL;
} = {
  userId: (c) => sql`${c.userId}::text`,
  currency: (c) => sql`${c.currency}::text`,
  transactionDate: (c) => sql`${c.transactionDate.toISOString()}::timestamptz`,
  transactionType: (c) => sql`${c.transactionType}::text`,
  amountMinor: (c) => sql`${c.amountMinor.toString()}::bigint`,
};

/**
 * Adds each transaction's contribution (or, with sign -1, takes it away) to the rollups in one
 * statement; returns the rows left with no transaction.
 */
export async function addContributions(
  dbTx: Db,
  changes: readonly { transaction: Contribution; sign: 1 | -1 }[],
  timeZone: string,
): Promise<EmptiedRollups> {
  const values = sql.join(
    changes.map(({ transaction, sign }) => {
      const fields = CONTRIBUTION_FIELDS.map((field) => CONTRIBUTION_VALUES[field](transaction));
      return sql`(${sql.join(fields, sql`, `)}, ${sign}::int)`;
    }),
    sql`, `,
  );
  const rows = sql`(values ${values}) as v(${CONTRIBUTION_INPUTS}, sign)`;
  return emptied(
    await queryRows<EmptiedRow>(
      dbTx,
      sql`with delta as (${contributions(rows, sql`${timeZone}::text`, sql`sign`)}),
      ${rollupUpserts(sql`delta`)}
      ${EMPTIED_TOTALS} union all ${EMPTIED_DAYS}`,
    ),
  );
}

/** Deletes the rollup rows given, if they still hold no transaction. */
export async function deleteEmptyRollups(dbTx: Db, rows: EmptiedRollups): Promise<void> {
  if (rows.totals.length > 0) {
    const keys = rows.totals.map((r) => sql`(${r.userId}, ${r.currency})`);
    await dbTx.execute(sql`delete from ${userStats} where ${userStats.transactionCount} = 0
      and (${userStats.userId}, ${userStats.currency}) in (${sql.join(keys, sql`, `)})`);
  }
  if (rows.days.length > 0) {
    const keys = rows.days.map((r) => sql`(${r.userId}, ${r.currency}, ${r.day}::date)`);
    await dbTx.execute(sql`delete from ${userDailyStats}
      where ${userDailyStats.transactionCount} = 0
      and (${userDailyStats.userId}, ${userDailyStats.currency}, ${userDailyStats.day})
        in (${sql.join(keys, sql`, `)})`);
  }
}

/** One rollup row's figures: per currency (`day` null) or per currency and day. */
export interface RollupFigures {
  currency: string;
  day: string | null;
  transactionCount: number;
  creditCount: number;
  debitCount: number;
  creditTotalMinor: bigint;
  debitTotalMinor: bigint;
  /** A stored totals row's last write (when the figures it answers for last changed). */
  updatedAt?: Date | undefined;
}

interface FiguresRow {
  currency: string;
  day: string | null;
  transaction_count: string | number;
  credit_count: string | number;
  debit_count: string | number;
  credit_total_minor: string | number;
  debit_total_minor: string | number;
  updated_at?: string | Date | null;
}

/** int8 and numeric come back as text from pg and as numbers from PGlite; totals as text here. */
function toFigures(row: FiguresRow): RollupFigures {
  return {
    currency: row.currency,
    day: row.day,
    transactionCount: Number(row.transaction_count),
    creditCount: Number(row.credit_count),
    debitCount: Number(row.debit_count),
    creditTotalMinor: BigInt(row.credit_total_minor),
    debitTotalMinor: BigInt(row.debit_total_minor),
    ...(row.updated_at == null ? {} : { updatedAt: new Date(row.updated_at) }),
  };
}

/** Each measure of `table` through `of` (a column, or a sum of it): totals as exact text. */
const selectMeasures = (
  table: RollupTable,
  of: (column: SQLWrapper) => SQLWrapper = (column) => column,
) =>
  sql.join(
    MEASURES.map((m) => {
      const cast = m === 'creditTotalMinor' || m === 'debitTotalMinor' ? sql`::text` : sql``;
      return sql`${of(bare(table[m]))}${cast} as ${bare(table[m])}`;
    }),
    sql`, `,
  );

/**
 * A user's rollups as the raw rows make them: the contributions of all their transactions, summed
 * per currency (`day` null) and per currency and day, in one scan.
 */
export async function recomputeRollups(
  db: Db,
  userId: string,
  timeZone: string,
): Promise<RollupFigures[]> {
  const c = userDailyStats;
  const sums = selectMeasures(c, (column) => sql`sum(${column})`);
  const rows = await queryRows<FiguresRow>(
    db,
    sql`select ${bare(c.currency)} as currency, ${bare(c.day)}::text as day, ${sums}
    from (${contributions(sql`${transactions}`, sql`${timeZone}::text`)}
      where ${transactions.userId} = ${userId}) as c
    group by grouping sets ((${bare(c.currency)}), (${bare(c.currency)}, ${bare(c.day)}))`,
  );
  return rows.map(toFigures);
}

/**
 * A user's rollups as stored: per currency (`day` null, with when the row was last written) and
 * per currency and day.
 */
export async function readStoredRollups(db: Db, userId: string): Promise<RollupFigures[]> {
  const rows = await queryRows<FiguresRow>(
    db,
    sql`select ${userStats.currency} as currency, null::text as day, ${selectMeasures(userStats)},
      ${userStats.updatedAt} as updated_at
    from ${userStats} where ${userStats.userId} = ${userId}
    union all
    select ${userDailyStats.currency}, ${userDailyStats.day}::text, ${selectMeasures(userDailyStats)},
      null
    from ${userDailyStats} where ${userDailyStats.userId} = ${userId}`,
  );
  return rows.map(toFigures);
}

/**
 * Adds `deltas` to a user's rollup rows (per currency where `day` is null, else per day) through
 * the same upserts as every write; a totals row keeps the `updatedAt` given (when the figures it
 * answers for last changed). Returns the rows left with no transaction.
 */
export async function addRollupDeltas(
  dbTx: Db,
  userId: string,
  deltas: readonly RollupFigures[],
): Promise<EmptiedRollups> {
  const measures = (d: RollupFigures) =>
    sql.join(
      MEASURES.map((m) => {
        const value = d[m];
        return typeof value === 'bigint' ? sql`${value.toString()}::numeric` : sql`${value}::int`;
      }),
      sql`, `,
    );
  const totals = deltas.filter((d) => d.day === null);
  const days = deltas.filter((d) => d.day !== null);
  const found: EmptiedRow[] = [];
  if (totals.length > 0) {
    const values = sql.join(
      totals.map(
        (d) =>
          sql`(${userId}::text, ${d.currency}::text, ${measures(d)},
          coalesce(${d.updatedAt?.toISOString() ?? null}::timestamptz, now()))`,
      ),
      sql`, `,
    );
    const delta = sql`(values ${values})
      as v(${columns([...TOTALS_KEY, ...measureColumns(userStats), userStats.updatedAt])})`;
    found.push(
      ...(await queryRows<EmptiedRow>(
        dbTx,
        sql`with totals as (${upsert(userStats, TOTALS_KEY, delta, {
          updatedAt: sql`max(${bare(userStats.updatedAt)})`,
        })}) ${EMPTIED_TOTALS}`,
      )),
    );
  }
  if (days.length > 0) {
    const values = sql.join(
      days.map((d) => sql`(${userId}::text, ${d.currency}::text, ${d.day}::date, ${measures(d)})`),
      sql`, `,
    );
    const delta = sql`(values ${values})
      as v(${columns([...DAYS_KEY, ...measureColumns(userDailyStats)])})`;
    found.push(
      ...(await queryRows<EmptiedRow>(
        dbTx,
        sql`with days as (${upsert(userDailyStats, DAYS_KEY, delta, {})}) ${EMPTIED_DAYS}`,
      )),
    );
  }
  return emptied(found);
}
