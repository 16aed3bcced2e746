import { sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import { queryRows, type Db } from '../../db/client.js';
import { transactions, userDailyStats, userStats } from '../../db/schema/index.js';
import { bare } from '../../db/sql.js';
import { contributions, CONTRIBUTION_INPUTS, localDay, MEASURES } from './rollups.repository.js';

const s = alias(userStats, 's');
const d = alias(userDailyStats, 'd');
const t = alias(transactions, 't');
// An alias renders as its name alone: a from-item names the table too.
const fromS = sql`${userStats} ${s}`;
const fromD = sql`${userDailyStats} ${d}`;
const fromT = sql`${transactions} ${t}`;

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
  const inScope = sql`${t.userId} = ${s.userId} and ${t.currency} = ${s.currency}`;
  const [row] = await queryRows<FiguresRow>(
    db,
    sql`
    select ${s.transactionCount} as transaction_count, ${s.creditCount} as credit_count,
      ${s.debitCount} as debit_count, ${s.creditTotalMinor}::text as credit_total_minor,
      ${s.debitTotalMinor}::text as debit_total_minor,
      b.day::text as busiest_day, b.transaction_count as busiest_day_count,
      (select min(${t.transactionDate}) from ${fromT} where ${inScope}) as first_date,
      (select max(${t.transactionDate}) from ${fromT} where ${inScope}) as last_date,
      ${s.updatedAt} as last_updated
    from ${fromS}
    left join lateral (
      select ${d.day} as day, ${d.transactionCount} as transaction_count from ${fromD}
      where ${d.userId} = ${s.userId} and ${d.currency} = ${s.currency}
      order by ${d.transactionCount} desc, ${d.day} asc
      limit 1
    ) b on true
    where ${s.userId} = ${userId} and ${s.currency} = ${currency}`,
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
  const local = (ts: SQL) => localDay(ts, sql`${timeZone}::text`);
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
  const zone = sql`${timeZone}::text`;
  const inRange: SQL[] = [];
  if (start) inRange.push(sql`${t.transactionDate} >= ${start.toISOString()}::timestamptz`);
  if (end) inRange.push(sql`${t.transactionDate} <= ${end.toISOString()}::timestamptz`);
  const scope = sql`${t.userId} = ${userId} and ${t.currency} = ${currency}`;
  const inRangeSql = inRange.length > 0 ? sql` and ${sql.join(inRange, sql` and `)}` : sql``;

  // The two edges, each its own index range scan, kept to their partial days by local date
  // (the right one also leaves out what the left took: a range within a day or two can give a
  // date to both).
  const localDate = localDay(t.transactionDate, zone);
  const edges: SQL[] = [];
  if (start && split.firstFullDay && split.leftEdgeBefore) {
    edges.push(
      sql`select ${CONTRIBUTION_INPUTS} from ${fromT}
        where ${scope}${inRangeSql}
          and ${t.transactionDate} < ${split.leftEdgeBefore.toISOString()}::timestamptz
          and ${localDate} < ${split.firstFullDay}::date`,
    );
  }
  if (end && split.lastFullDay && split.rightEdgeFrom) {
    const notLeft =
      start && split.firstFullDay ? sql` and ${localDate} >= ${split.firstFullDay}::date` : sql``;
    edges.push(
      sql`select ${CONTRIBUTION_INPUTS} from ${fromT}
        where ${scope}${inRangeSql}
          and ${t.transactionDate} >= ${split.rightEdgeFrom.toISOString()}::timestamptz
          and ${localDate} > ${split.lastFullDay}::date${notLeft}`,
    );
  }

  // Per local day: the daily rollup's whole days, and the edge days' transactions through the
  // same contribution the rollups are made of.
  const fullDays: SQL[] = [sql`${d.userId} = ${userId}`, sql`${d.currency} = ${currency}`];
  if (split.firstFullDay) fullDays.push(sql`${d.day} >= ${split.firstFullDay}::date`);
  if (split.lastFullDay) fullDays.push(sql`${d.day} <= ${split.lastFullDay}::date`);
  const dayAndMeasures = (table: typeof d | typeof userDailyStats) =>
    sql.join(
      [table.day, ...MEASURES.map((m) => table[m])].map((column) => bare(column)),
      sql`, `,
    );
  const days = [
    sql`select ${dayAndMeasures(d)} from ${fromD} where ${sql.join(fullDays, sql` and `)}`,
  ];
  if (edges.length > 0) {
    days.push(
      sql`select ${dayAndMeasures(userDailyStats)}
        from (${contributions(sql`(${sql.join(edges, sql` union all `)}) e`, zone)}) c`,
    );
  }
  const sum = (m: (typeof MEASURES)[number]) => sql`sum(${bare(userDailyStats[m])})`;

  const [row] = await queryRows<FiguresRow>(
    db,
    sql`
    with per_day as (
      select ${bare(userDailyStats.day)} as day, ${sum('transactionCount')} as n,
        ${sum('creditCount')} as cn, ${sum('debitCount')} as dn,
        ${sum('creditTotalMinor')} as ct, ${sum('debitTotalMinor')} as dt
      from (${sql.join(days, sql` union all `)}) x
      group by 1
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
      (select min(${t.transactionDate}) from ${fromT} where ${scope}${inRangeSql}) as first_date,
      (select max(${t.transactionDate}) from ${fromT} where ${scope}${inRangeSql}) as last_date,
      (select ${s.updatedAt} from ${fromS} where ${s.userId} = ${userId} and ${s.currency} = ${currency}) as last_updated`,
  );
  return row && Number(row.transaction_count) > 0 ? toFigures(row) : undefined;
}
