import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../platform/db.js';

/** Analytics for one user and currency, as the database holds them. */
export interface AnalyticsFigures {
  transactionCount: number;
  creditCount: number;
  debitCount: number;
  creditTotalMinor: bigint;
  debitTotalMinor: bigint;
  busiestDay: string | null;
  busiestDayCount: number;
  firstTransactionDate: Date | null;
  lastTransactionDate: Date | null;
  lastUpdated: Date | null;
}

interface FiguresRow {
  transaction_count: string | number | null;
  credit_count: string | number | null;
  debit_count: string | number | null;
  credit_total_minor: string | null;
  debit_total_minor: string | null;
  busiest_day: string | null;
  busiest_day_count: string | number | null;
  first_date: string | Date | null;
  last_date: string | Date | null;
  last_updated: string | Date | null;
}

/** int8 and numeric come back as text from pg and as numbers from PGlite; dates likewise. */
function toFigures(row: FiguresRow): AnalyticsFigures {
  const date = (v: string | Date | null) => (v === null ? null : new Date(v));
  return {
    transactionCount: Number(row.transaction_count ?? 0),
    creditCount: Number(row.credit_count ?? 0),
    debitCount: Number(row.debit_count ?? 0),
    creditTotalMinor: BigInt(row.credit_total_minor ?? 0),
    debitTotalMinor: BigInt(row.debit_total_minor ?? 0),
    busiestDay: row.busiest_day,
    busiestDayCount: Number(row.busiest_day_count ?? 0),
    firstTransactionDate: date(row.first_date),
    lastTransactionDate: date(row.last_date),
    lastUpdated: date(row.last_updated),
  };
}

/**
 * All-time figures in one statement: the user_stats row, the top of the busiest-day index, and
 * the two ends of the (user, currency, date) index. O(log n) in the number of transactions.
 */
export async function readAllTime(
  db: Db,
  userId: string,
  currency: string,
): Promise<AnalyticsFigures | undefined> {
  const [row] = await queryRows<FiguresRow>(
    db,
    sql`
    select s.transaction_count, s.credit_count, s.debit_count,
      s.credit_total_minor::text as credit_total_minor, s.debit_total_minor::text as debit_total_minor,
      b.day::text as busiest_day, b.transaction_count as busiest_day_count,
      (select min(t.transaction_date) from transactions t
        where t.user_id = s.user_id and t.currency = s.currency) as first_date,
      (select max(t.transaction_date) from transactions t
        where t.user_id = s.user_id and t.currency = s.currency) as last_date,
      s.updated_at as last_updated
    from user_stats s
    left join lateral (
      select d.day, d.transaction_count from user_daily_stats d
      where d.user_id = s.user_id and d.currency = s.currency
      order by d.transaction_count desc, d.day asc
      limit 1
    ) b on true
    where s.user_id = ${userId} and s.currency = ${currency}`,
  );
  return row && Number(row.transaction_count) > 0 ? toFigures(row) : undefined;
}

/**
 * The instant each local calendar day starts in `timeZone`, as the database computes it (the same
 * computation that assigns transactions to days, DST gaps and all).
 */
export async function localDayStarts(
  db: Db,
  days: readonly string[],
  timeZone: string,
): Promise<Date[]> {
  const rows = await queryRows<{ start: string | Date }>(
    db,
    sql`select (d::timestamp at time zone ${timeZone}) as start
      from unnest(${sql.param(days)}::date[]) with ordinality as u(d, n) order by n`,
  );
  return rows.map((r) => new Date(r.start));
}

/** The whole calendar days inside a range, and the instants where its partial edge days lie. */
interface RangeSplit {
  firstFullDay: string | null;
  lastFullDay: string | null;
  /** Midnight that starts the first whole day: rows before it are the left edge. */
  leftEdgeEnd: Date | null;
  /** Midnight after the last whole day: rows from it on are the right edge. */
  rightEdgeStart: Date | null;
}

async function splitRange(
  db: Db,
  start: Date | undefined,
  end: Date | undefined,
  timeZone: string,
): Promise<RangeSplit> {
  // A day is whole when the range covers it from its midnight to the last millisecond before the
  // next one, in the analytics time zone (the database knows its DST rules).
  const startTs = start ? sql`${start.toISOString()}::timestamptz` : sql`null::timestamptz`;
  const endTs = end ? sql`${end.toISOString()}::timestamptz` : sql`null::timestamptz`;
  const [row] = await queryRows<{
    first_full_day: string | null;
    last_full_day: string | null;
    left_edge_end: string | Date | null;
    right_edge_start: string | Date | null;
  }>(
    db,
    sql`
    with local as (
      select (${startTs} at time zone ${timeZone}) as s, (${endTs} at time zone ${timeZone}) as e
    ), days as (
      select
        case when s::time = '00:00' then s::date else s::date + 1 end as fd,
        case when (e + interval '1 millisecond')::time = '00:00' then e::date else e::date - 1 end as ld
      from local
    )
    select fd::text as first_full_day, ld::text as last_full_day,
      (fd::timestamp at time zone ${timeZone}) as left_edge_end,
      ((ld + 1)::timestamp at time zone ${timeZone}) as right_edge_start
    from days`,
  );
  const date = (v: string | Date | null | undefined) => (v == null ? null : new Date(v));
  return {
    firstFullDay: row?.first_full_day ?? null,
    lastFullDay: row?.last_full_day ?? null,
    leftEdgeEnd: date(row?.left_edge_end),
    rightEdgeStart: date(row?.right_edge_start),
  };
}

/**
 * Figures over [start, end] (each optional, inclusive): whole days from the daily rollup, the
 * partial days at either edge from the transactions index. O(days in range + rows on edge days).
 */
export async function readRange(
  db: Db,
  userId: string,
  currency: string,
  start: Date | undefined,
  end: Date | undefined,
  timeZone: string,
): Promise<AnalyticsFigures | undefined> {
  const split = await splitRange(db, start, end, timeZone);
  const inRange: SQL[] = [];
  if (start) inRange.push(sql`t.transaction_date >= ${start.toISOString()}::timestamptz`);
  if (end) inRange.push(sql`t.transaction_date <= ${end.toISOString()}::timestamptz`);
  const scope = sql`t.user_id = ${userId} and t.currency = ${currency}`;
  const inRangeSql = inRange.length > 0 ? sql` and ${sql.join(inRange, sql` and `)}` : sql``;

  // The two edges, each its own index range scan; the right one excludes what the left took
  // (when the range lies within a day or two they can overlap).
  const edges: SQL[] = [];
  if (split.leftEdgeEnd) {
    edges.push(
      sql`select t.transaction_date, t.transaction_type, t.amount_minor from transactions t
        where ${scope}${inRangeSql} and t.transaction_date < ${split.leftEdgeEnd.toISOString()}::timestamptz`,
    );
  }
  if (split.rightEdgeStart) {
    const notLeft = split.leftEdgeEnd
      ? sql` and t.transaction_date >= ${split.leftEdgeEnd.toISOString()}::timestamptz`
      : sql``;
    edges.push(
      sql`select t.transaction_date, t.transaction_type, t.amount_minor from transactions t
        where ${scope}${inRangeSql} and t.transaction_date >= ${split.rightEdgeStart.toISOString()}::timestamptz${notLeft}`,
    );
  }
  const edgeRows =
    edges.length > 0
      ? sql`select (e.transaction_date at time zone ${timeZone})::date as day, 1 as n,
          (e.transaction_type = 'credit')::int as cn, (e.transaction_type = 'debit')::int as dn,
          case when e.transaction_type = 'credit' then e.amount_minor else 0 end::numeric as ct,
          case when e.transaction_type = 'debit' then e.amount_minor else 0 end::numeric as dt
        from (${sql.join(edges, sql` union all `)}) e`
      : sql`select null::date as day, 0 as n, 0 as cn, 0 as dn, 0::numeric as ct, 0::numeric as dt where false`;

  const fullDays: SQL[] = [sql`d.user_id = ${userId}`, sql`d.currency = ${currency}`];
  if (split.firstFullDay) fullDays.push(sql`d.day >= ${split.firstFullDay}::date`);
  if (split.lastFullDay) fullDays.push(sql`d.day <= ${split.lastFullDay}::date`);

  const [row] = await queryRows<FiguresRow>(
    db,
    sql`
    with per_day as (
      select day, sum(n) as n, sum(cn) as cn, sum(dn) as dn, sum(ct) as ct, sum(dt) as dt
      from (
        select d.day, d.transaction_count as n, d.credit_count as cn, d.debit_count as dn,
          d.credit_total_minor as ct, d.debit_total_minor as dt
        from user_daily_stats d where ${sql.join(fullDays, sql` and `)}
        union all
        ${edgeRows}
      ) x
      group by day
    ), busiest as (
      select day, n from per_day order by n desc, day asc limit 1
    )
    select
      (select coalesce(sum(n), 0) from per_day) as transaction_count,
      (select coalesce(sum(cn), 0) from per_day) as credit_count,
      (select coalesce(sum(dn), 0) from per_day) as debit_count,
      (select coalesce(sum(ct), 0)::text from per_day) as credit_total_minor,
      (select coalesce(sum(dt), 0)::text from per_day) as debit_total_minor,
      (select day::text from busiest) as busiest_day,
      (select n from busiest) as busiest_day_count,
      (select min(t.transaction_date) from transactions t where ${scope}${inRangeSql}) as first_date,
      (select max(t.transaction_date) from transactions t where ${scope}${inRangeSql}) as last_date,
      (select s.updated_at from user_stats s where s.user_id = ${userId} and s.currency = ${currency}) as last_updated`,
  );
  return row && Number(row.transaction_count) > 0 ? toFigures(row) : undefined;
}
