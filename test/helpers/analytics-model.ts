/**
 * A naive model of the analytics endpoints and rollup tables, computed from raw transaction rows
 * with nothing but BigInt arithmetic and the calendar. Deliberately shares no code with src/: it is
 * what the property tests compare the service against.
 */

/** Minor-unit exponents of the currencies the property tests use (ISO 4217). */
export const CURRENCY_EXPONENTS: Readonly<Record<string, number>> = { GHS: 2, JPY: 0, BHD: 3 };

export type TransactionType = 'credit' | 'debit';

/** One row of the transactions table, as the tests read it back. */
export interface RawRow {
  id: string;
  userId: string;
  currency: string;
  /** transaction_date, in milliseconds since the epoch (storage keeps milliseconds). */
  dateMs: number;
  type: TransactionType;
  amountMinor: bigint;
}

/** The `data` of GET /api/v1/analytics/{user_id}, less `last_updated`. */
export interface ExpectedAnalytics {
  user_id: string;
  currency: string;
  transaction_count: number;
  credit_count: number;
  debit_count: number;
  average_transaction_value: number;
  credit_total: number;
  debit_total: number;
  net_total: number;
  credit_total_minor: string;
  debit_total_minor: string;
  net_total_minor: string;
  highest_transactions_day: string;
  highest_transactions_day_count: number;
  first_transaction_date: string;
  last_transaction_date: string;
}

export interface StatsRow {
  user_id: string;
  currency: string;
  transaction_count: number;
  credit_count: number;
  debit_count: number;
  credit_total_minor: string;
  debit_total_minor: string;
}

export interface DailyStatsRow extends StatsRow {
  day: string;
}

export function exponentOf(currency: string): number {
  const exponent = CURRENCY_EXPONENTS[currency];
  if (exponent === undefined) throw new Error(`No exponent for ${currency} in the model`);
  return exponent;
}

/** `minor` as a plain decimal with exactly `exponent` fraction digits: 1050n, 2 → "10.50". */
export function fixedDecimal(minor: bigint, exponent: number): string {
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString().padStart(exponent + 1, '0');
  const int = digits.slice(0, digits.length - exponent);
  const frac = digits.slice(digits.length - exponent);
  return `${negative ? '-' : ''}${int}${exponent > 0 ? `.${frac}` : ''}`;
}

/** The JSON number the API shows for an amount: the nearest double to the exact decimal. */
export function majorNumber(minor: bigint, exponent: number): number {
  return Number(fixedDecimal(minor, exponent));
}

/** n / d rounded to the nearest integer, ties to the even neighbour (floor-based, any sign). */
export function roundHalfEven(n: bigint, d: bigint): bigint {
  if (d <= 0n) throw new RangeError('d must be positive');
  let q = n / d;
  if (n % d !== 0n && n < 0n) q -= 1n; // BigInt division truncates; make it a floor
  const r = n - q * d; // 0 <= r < d
  if (2n * r > d) return q + 1n;
  if (2n * r === d) return q % 2n === 0n ? q : q + 1n;
  return q;
}

const dayFormatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar day (YYYY-MM-DD) of an instant, on the wall clocks of `timeZone`. */
export function localDay(ms: number, timeZone: string): string {
  if (timeZone === 'UTC') return new Date(ms).toISOString().slice(0, 10);
  let format = dayFormatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    dayFormatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(
    format.formatToParts(new Date(ms)).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/**
 * The first instant of calendar day `day` (YYYY-MM-DD) in `timeZone`: a binary search for the
 * earliest millisecond whose local day is not before it.
 */
export function localMidnight(day: string, timeZone: string): number {
  const utcMidnight = Date.parse(`${day}T00:00:00Z`);
  let lo = utcMidnight - 36 * 3_600_000; // local day certainly earlier
  let hi = utcMidnight + 36 * 3_600_000; // local day certainly not earlier
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDay(mid, timeZone) < day) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Inclusive bounds in milliseconds; either may be missing. */
export interface Bounds {
  start?: number | undefined;
  end?: number | undefined;
}

export function inBounds(ms: number, bounds: Bounds): boolean {
  return (
    (bounds.start === undefined || ms >= bounds.start) &&
    (bounds.end === undefined || ms <= bounds.end)
  );
}

/**
 * What the analytics endpoints must answer for `userId` in `currency` over the rows inside
 * `bounds`, or undefined when no row is (the API's 404).
 */
export function expectedAnalytics(
  rows: readonly RawRow[],
  userId: string,
  currency: string,
  timeZone: string,
  bounds: Bounds = {},
): ExpectedAnalytics | undefined {
  const mine = rows.filter(
    (r) => r.userId === userId && r.currency === currency && inBounds(r.dateMs, bounds),
  );
  if (mine.length === 0) return undefined;
  let creditCount = 0;
  let debitCount = 0;
  let creditTotal = 0n;
  let debitTotal = 0n;
  const perDay = new Map<string, number>();
  let first = Infinity;
  let last = -Infinity;
  for (const row of mine) {
    if (row.type === 'credit') {
      creditCount += 1;
      creditTotal += row.amountMinor;
    } else {
      debitCount += 1;
      debitTotal += row.amountMinor;
    }
    const day = localDay(row.dateMs, timeZone);
    perDay.set(day, (perDay.get(day) ?? 0) + 1);
    first = Math.min(first, row.dateMs);
    last = Math.max(last, row.dateMs);
  }
  let busiestDay = '';
  let busiestCount = 0;
  for (const [day, count] of perDay) {
    if (count > busiestCount || (count === busiestCount && day < busiestDay)) {
      busiestDay = day;
      busiestCount = count;
    }
  }
  const exponent = exponentOf(currency);
  const average = roundHalfEven(creditTotal + debitTotal, BigInt(mine.length));
  return {
    user_id: userId,
    currency,
    transaction_count: mine.length,
    credit_count: creditCount,
    debit_count: debitCount,
    average_transaction_value: majorNumber(average, exponent),
    credit_total: majorNumber(creditTotal, exponent),
    debit_total: majorNumber(debitTotal, exponent),
    net_total: majorNumber(creditTotal - debitTotal, exponent),
    credit_total_minor: creditTotal.toString(),
    debit_total_minor: debitTotal.toString(),
    net_total_minor: (creditTotal - debitTotal).toString(),
    highest_transactions_day: busiestDay,
    highest_transactions_day_count: busiestCount,
    first_transaction_date: new Date(first).toISOString(),
    last_transaction_date: new Date(last).toISOString(),
  };
}

function accumulate(
  groups: Map<string, StatsRow & { day?: string }>,
  key: string,
  seed: StatsRow & { day?: string },
  row: RawRow,
): void {
  const group = groups.get(key) ?? seed;
  groups.set(key, group);
  group.transaction_count += 1;
  if (row.type === 'credit') {
    group.credit_count += 1;
    group.credit_total_minor = (BigInt(group.credit_total_minor) + row.amountMinor).toString();
  } else {
    group.debit_count += 1;
    group.debit_total_minor = (BigInt(group.debit_total_minor) + row.amountMinor).toString();
  }
}

const byKey = (a: { key: string }, b: { key: string }) =>
  a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

/** user_stats and user_daily_stats as they must be: a group-by of the rows, no empty groups. */
export function expectedRollups(
  rows: readonly RawRow[],
  timeZone: string,
): { userStats: StatsRow[]; dailyStats: DailyStatsRow[] } {
  const totals = new Map<string, StatsRow>();
  const days = new Map<string, DailyStatsRow>();
  const empty = (row: RawRow): StatsRow => ({
    user_id: row.userId,
    currency: row.currency,
    transaction_count: 0,
    credit_count: 0,
    debit_count: 0,
    credit_total_minor: '0',
    debit_total_minor: '0',
  });
  for (const row of rows) {
    const day = localDay(row.dateMs, timeZone);
    accumulate(totals, statsKey(row.userId, row.currency), empty(row), row);
    accumulate(days, dailyKey(row.userId, row.currency, day), { ...empty(row), day }, row);
  }
  return {
    userStats: sortStats([...totals.values()]),
    dailyStats: sortDaily([...days.values()]),
  };
}

const statsKey = (userId: string, currency: string) => JSON.stringify([userId, currency]);
const dailyKey = (userId: string, currency: string, day: string) =>
  JSON.stringify([userId, currency, day]);

export function sortStats(rows: StatsRow[]): StatsRow[] {
  return rows
    .map((row) => ({ key: statsKey(row.user_id, row.currency), row }))
    .sort(byKey)
    .map(({ row }) => row);
}

export function sortDaily(rows: DailyStatsRow[]): DailyStatsRow[] {
  return rows
    .map((row) => ({ key: dailyKey(row.user_id, row.currency, row.day), row }))
    .sort(byKey)
    .map(({ row }) => row);
}
