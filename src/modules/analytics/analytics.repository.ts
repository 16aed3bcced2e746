import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';

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
 * The first instant of local date `day` in `timeZone`. PostgreSQL's `day::timestamp at time
 * zone` picks one reading of midnight: on a day whose midnight happens twice (clocks go back to
 * 00:00) it picks the later, so the earlier reading (midnight with the offset in force three
 * hours before) is taken when it falls on that date too; when the clocks go back at midnight to
 * the day before, that earlier reading is still the previous date and the later one stands.
 */
function firstInstantOf(day: SQL, timeZone: string): SQL {
  const later = sql`((${day})::timestamp at time zone ${timeZone})`;
  const before = sql`(${later} - interval '3 hours')`;
  const earlier = sql`(((${day})::timestamp - (${before} at time zone ${timeZone} - ${before} at time zone 'UTC')) at time zone 'UTC')`;
  return sql`(case when (${earlier} at time zone ${timeZone})::date = (${day})::date
    then least(${earlier}, ${later}) else ${later} end)`;
}

/** The first instant of each local calendar day, as the database computes days. */
export async function localDayStarts(
  db: Db,
  days: readonly string[],
  timeZone: string,
): Promise<Date[]> {
  const rows = await queryRows<{ start: string | Date }>(
    db,
    sql`select ${firstInstantOf(sql`d`, timeZone)} as start
      from unnest(${sql.param(days)}::date[]) with ordinality as u(d, n) order by n`,
  );
  return rows.map((r) => new Date(r.start));
}

/** How a range divides into whole local days and the partial days at its edges. */
interface RangeSplit {
  /** First and last local dates the range covers entirely (null: unbounded on that side). */
  firstFullDay: string | null;
  lastFullDay: string | null;
  /** Index bounds that enclose each edge's rows with room for DST shifts (filtered by date). */
  leftEdgeBefore: Date | null;
  rightEdgeFrom: Date | null;
}

async function splitRange(
  db: Db,
  start: Date | undefined,
  end: Date | undefined,
  timeZone: string,
): Promise<RangeSplit> {
  // A local date is whole when the range holds its first instant and its last millisecond: the
  // start is the first instant of its date when the millisecond before falls on another date.
  const startTs = start ? sql`${start.toISOString()}::timestamptz` : sql`null::timestamptz`;
  const endTs = end ? sql`${end.toISOString()}::timestamptz` : sql`null::timestamptz`;
  const local = (ts: SQL) => sql`((${ts}) at time zone ${timeZone})::date`;
  const [row] = await queryRows<{
    fd: string | null;
    ld: string | null;
    left_before: string | Date | null;
    right_from: string | Date | null;
  }>(
    db,
    sql`
    with days as (
      select
        case when ${local(sql`${startTs} - interval '1 millisecond'`)} < ${local(startTs)}
          then ${local(startTs)} else ${local(startTs)} + 1 end as fd,
        case when ${local(sql`${endTs} + interval '1 millisecond'`)} > ${local(endTs)}
          then ${local(endTs)} else ${local(endTs)} - 1 end as ld
    )
    select fd::text as fd, ld::text as ld,
      ${firstInstantOf(sql`fd`, timeZone)} + interval '3 hours' as left_before,
      ${firstInstantOf(sql`ld + 1`, timeZone)} - interval '3 hours' as right_from
    from days`,
  );
  const date = (v: string | Date | null | undefined) => (v == null ? null : new Date(v));
  return {
    firstFullDay: row?.fd ?? null,
    lastFullDay: row?.ld ?? null,
    leftEdgeBefore: date(row?.left_before),
    rightEdgeFrom: date(row?.right_from),
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

  // The two edges, each its own index range scan, kept to their partial days by local date
  // (the right one also leaves out what the left took: a range within a day or two can give a
  // date to both).
  const localDate = sql`(t.transaction_date at time zone ${timeZone})::date`;
  const edges: SQL[] = [];
  if (start && split.firstFullDay && split.leftEdgeBefore) {
    edges.push(
      sql`select t.transaction_date, t.transaction_type, t.amount_minor from transactions t
        where ${scope}${inRangeSql}
          and t.transaction_date < ${split.leftEdgeBefore.toISOString()}::timestamptz
          and ${localDate} < ${split.firstFullDay}::date`,
    );
  }
  if (end && split.lastFullDay && split.rightEdgeFrom) {
    const notLeft =
      start && split.firstFullDay ? sql` and ${localDate} >= ${split.firstFullDay}::date` : sql``;
    edges.push(
      sql`select t.transaction_date, t.transaction_type, t.amount_minor from transactions t
        where ${scope}${inRangeSql}
          and t.transaction_date >= ${split.rightEdgeFrom.toISOString()}::timestamptz
          and ${localDate} > ${split.lastFullDay}::date${notLeft}`,
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
