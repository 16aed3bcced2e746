/**
 * Property: whatever sequence of creates, updates (moving transactions across days and currencies)
 * and deletes several clients apply concurrently, afterwards every analytics answer, and the rollup
 * tables themselves, equal a naive recomputation from the raw rows, to the minor unit.
 *
 * On PGlite the writes interleave at request granularity; with TEST_DATABASE_URL they run truly
 * concurrently on a pool of connections (lock waits, and deadlocks if there were any).
 *
 * Knobs for exploring: TEST_ANALYTICS_RUNS (default 25), TEST_ANALYTICS_TIMEZONE (the app's
 * ANALYTICS_TIMEZONE, default UTC) and TEST_ANALYTICS_FIRST_DAY (first of the four days the dates
 * fall in, default 2024-02-27), e.g. to put a DST change inside the window.
 */
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { useTestApp } from '../helpers/app.js';
import { uniqueUserId } from '../helpers/factories.js';
import {
  expectedAnalytics,
  expectedRollups,
  exponentOf,
  fixedDecimal,
  inBounds,
  localDay,
  localMidnight,
  majorNumber,
  roundHalfEven,
  sortDaily,
  sortStats,
  type Bounds,
  type DailyStatsRow,
  type RawRow,
  type StatsRow,
  type TransactionType,
} from '../helpers/analytics-model.js';
import type { ErrorBody as ErrorResponse } from '../../src/platform/http-errors.js';

const TIME_ZONE = process.env.TEST_ANALYTICS_TIMEZONE || 'UTC';
const NUM_RUNS = Number(process.env.TEST_ANALYTICS_RUNS || 25);

const context = useTestApp({ env: { ANALYTICS_TIMEZONE: TIME_ZONE } });

const CURRENCIES = ['GHS', 'JPY', 'BHD'] as const;
type Currency = (typeof CURRENCIES)[number];
const TYPES: readonly TransactionType[] = ['credit', 'debit'];
const DAY_MS = 86_400_000;
/** By default the window crosses 29 February and the end of a month. */
const FIRST_DAY_MS = Date.parse(process.env.TEST_ANALYTICS_FIRST_DAY || '2024-02-27');
const DAYS = 4;
/** Offsets a client may write its dates in, in minutes; some move the UTC day. */
const OFFSETS = [-720, -330, -60, 60, 345, 840] as const;

// ---------------------------------------------------------------------------------------------
// Generators

/** Times of day, biased to the edges of a day. */
const timeOfDayArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      0,
      1,
      999,
      1_000,
      60_000,
      DAY_MS - 60_000,
      DAY_MS - 1_000,
      DAY_MS - 1,
    ),
  },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: DAY_MS - 1 }) },
);

const instantArb = (firstDay: number, lastDay: number) =>
  fc
    .tuple(fc.integer({ min: firstDay, max: lastDay }), timeOfDayArb)
    .map(([day, time]) => FIRST_DAY_MS + day * DAY_MS + time);

type DateFormat = 'utc' | 'offset' | 'naive';

interface InstantText {
  ms: number;
  format: DateFormat;
  offset: number;
}

const instantTextArb = (firstDay: number, lastDay: number) =>
  fc.record({
    ms: instantArb(firstDay, lastDay),
    format: fc.constantFrom<DateFormat>('utc', 'offset', 'naive'),
    offset: fc.constantFrom(...OFFSETS),
  });

const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** An instant written as a client might: Z, another offset, or no offset at all (UTC). */
function renderInstant({ ms, format, offset }: InstantText): string {
  if (format === 'utc') return new Date(ms).toISOString();
  if (format === 'naive') return new Date(ms).toISOString().slice(0, -1);
  const wall = new Date(ms + offset * 60_000).toISOString().slice(0, -1);
  const abs = Math.abs(offset);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${wall}${offset < 0 ? '-' : '+'}${hh}:${mm}`;
}

/** A transaction_date: an instant in some notation, or a date alone (its midnight UTC). */
const transactionDateArb = fc.oneof(
  { weight: 4, arbitrary: instantTextArb(0, DAYS - 1).map(renderInstant) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: DAYS - 1 }).map((d) => ymd(FIRST_DAY_MS + d * DAY_MS)),
  },
);

const minorArb = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 100_000n }) },
  { weight: 2, arbitrary: fc.bigInt({ min: 1n, max: 10n ** 9n }) },
  // Near the 15-digit limit: totals of a few of these pass 2^53.
  { weight: 1, arbitrary: fc.bigInt({ min: 10n ** 14n, max: 10n ** 15n - 1n }) },
);

/** How an amount is written: its minor units, trimmed or padded, as a string or a JSON number. */
interface AmountText {
  minor: bigint;
  trim: boolean;
  extraZeros: number;
  asNumber: boolean;
}

const amountArb: fc.Arbitrary<AmountText> = fc.record({
  minor: minorArb,
  trim: fc.boolean(),
  extraZeros: fc.integer({ min: 0, max: 2 }),
  asNumber: fc.boolean(),
});

function trimZeros(text: string): string {
  if (!text.includes('.')) return text;
  return text.replace(/0+$/, '').replace(/\.$/, '');
}

/** A valid transaction_amount for `currency`: never more fraction digits than its minor unit. */
function renderAmount(amount: AmountText, currency: string): string | number {
  let text = fixedDecimal(amount.minor, exponentOf(currency));
  if (amount.trim) text = trimZeros(text);
  if (amount.asNumber) return Number(text);
  if (amount.extraZeros > 0)
    text += `${text.includes('.') ? '' : '.'}${'0'.repeat(amount.extraZeros)}`;
  return text;
}

/** A whole amount ("12", "12.0", 12): valid in every currency, whichever the row is in now. */
interface WholeAmountText {
  major: bigint;
  zeros: number;
  asNumber: boolean;
}

const wholeAmountArb: fc.Arbitrary<WholeAmountText> = fc.record({
  major: fc.oneof(
    fc.bigInt({ min: 1n, max: 1_000n }),
    fc.bigInt({ min: 1n, max: 10n ** 11n }), // BHD keeps it below 10^15 minor units
  ),
  zeros: fc.integer({ min: 0, max: 3 }),
  asNumber: fc.boolean(),
});

function renderWholeAmount(amount: WholeAmountText): string | number {
  if (amount.asNumber) return Number(amount.major);
  return amount.zeros > 0 ? `${amount.major}.${'0'.repeat(amount.zeros)}` : `${amount.major}`;
}

/** A range bound: a date alone, an instant in some notation, or just around a stored row. */
type BoundSpec =
  | { kind: 'date'; day: number }
  | { kind: 'instant'; text: InstantText }
  | { kind: 'row'; index: number; delta: -1 | 0 | 1; text: InstantText };

const boundArb: fc.Arbitrary<BoundSpec> = fc.oneof(
  fc.record({ kind: fc.constant('date' as const), day: fc.integer({ min: -1, max: DAYS }) }),
  fc.record({ kind: fc.constant('instant' as const), text: instantTextArb(-1, DAYS) }),
  fc.record({
    kind: fc.constant('row' as const),
    index: fc.nat(),
    delta: fc.constantFrom<-1 | 0 | 1>(-1, 0, 1),
    text: instantTextArb(0, 0).map((t) => ({
      ...t,
      format: t.format === 'naive' ? 'utc' : t.format,
    })),
  }),
);

interface RangeSpec {
  start?: BoundSpec | undefined;
  end?: BoundSpec | undefined;
}

const rangeArb: fc.Arbitrary<RangeSpec> = fc.record({
  start: fc.option(boundArb, { nil: undefined }),
  end: fc.option(boundArb, { nil: undefined }),
});

interface CreateOp {
  kind: 'create';
  user: number;
  currency: Currency;
  type: TransactionType;
  amount: AmountText;
  date: string;
}

interface PatchSpec {
  type?: TransactionType;
  date?: string;
  /** A new currency, with an amount valid for it; without one, the service rescales (or 422s). */
  move?: { currency: Currency; lowercase: boolean; amount?: AmountText };
  wholeAmount?: WholeAmountText;
  description?: string;
}

interface UpdateOp {
  kind: 'update';
  target: number;
  method: 'PATCH' | 'PUT';
  patch: PatchSpec;
}

interface DeleteOp {
  kind: 'delete';
  target: number;
}

/** A read while writes are in flight: whatever it sees must be internally consistent. */
interface ReadOp {
  kind: 'read';
  user: number;
  currency: Currency;
  range?: RangeSpec | undefined;
}

type Op = CreateOp | UpdateOp | DeleteOp | ReadOp;

const currencyArb = fc.constantFrom(...CURRENCIES);
const typeArb = fc.constantFrom(...TYPES);

const createArb: fc.Arbitrary<CreateOp> = fc.record({
  kind: fc.constant('create' as const),
  user: fc.nat({ max: 2 }),
  currency: currencyArb,
  type: typeArb,
  amount: amountArb,
  date: transactionDateArb,
});

const patchArb: fc.Arbitrary<PatchSpec> = fc.record(
  {
    type: typeArb,
    date: transactionDateArb,
    move: fc.record(
      {
        currency: currencyArb,
        lowercase: fc.boolean(),
        amount: amountArb,
      },
      { requiredKeys: ['currency', 'lowercase'] },
    ),
    wholeAmount: wholeAmountArb,
    description: fc.constantFrom('moved', 'renamed'),
  },
  { requiredKeys: [] },
);

const updateArb: fc.Arbitrary<UpdateOp> = fc.record({
  kind: fc.constant('update' as const),
  target: fc.nat(),
  method: fc.constantFrom<'PATCH' | 'PUT'>('PATCH', 'PUT'),
  patch: patchArb,
});

const deleteArb: fc.Arbitrary<DeleteOp> = fc.record({
  kind: fc.constant('delete' as const),
  target: fc.nat(),
});

const readArb: fc.Arbitrary<ReadOp> = fc.record({
  kind: fc.constant('read' as const),
  user: fc.nat({ max: 2 }),
  currency: currencyArb,
  range: fc.option(rangeArb, { nil: undefined }),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: createArb },
  { weight: 4, arbitrary: updateArb },
  { weight: 2, arbitrary: deleteArb },
  { weight: 1, arbitrary: readArb },
);

const scenarioArb = fc.record({
  userCount: fc.integer({ min: 2, max: 3 }),
  clientCount: fc.integer({ min: 3, max: 4 }),
  ops: fc.array(fc.record({ client: fc.nat({ max: 3 }), op: opArb }), {
    minLength: 1,
    maxLength: 25,
    size: 'max',
  }),
  ranges: fc.array(rangeArb, { minLength: 2, maxLength: 5 }),
});

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

// ---------------------------------------------------------------------------------------------
// Driving the API

interface Ledger {
  /** Ids in the order their creates returned. */
  created: string[];
  /** Ids each successful delete removed (a second success for one id would be a bug). */
  deleted: string[];
  /** Ids an update or delete was told do not exist. */
  notFound: Set<string>;
}

async function inject(
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
  url: string,
  payload?: object,
) {
  return context.app.inject({ method, url, ...(payload ? { payload } : {}) });
}

function patchBody(patch: PatchSpec): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (patch.type) body.transaction_type = patch.type;
  if (patch.date) body.transaction_date = patch.date;
  if (patch.move) {
    body.currency = patch.move.lowercase ? patch.move.currency.toLowerCase() : patch.move.currency;
    if (patch.move.amount) {
      body.transaction_amount = renderAmount(patch.move.amount, patch.move.currency);
    }
  }
  if (patch.wholeAmount && body.transaction_amount === undefined) {
    body.transaction_amount = renderWholeAmount(patch.wholeAmount);
  }
  if (patch.description || Object.keys(body).length === 0) {
    body.description = patch.description ?? 'touched';
  }
  return body;
}

async function runOp(op: Op, users: readonly string[], ledger: Ledger): Promise<void> {
  switch (op.kind) {
    case 'create': {
      const res = await inject('POST', '/api/v1/transaction/', {
        user_id: users[op.user % users.length],
        full_name: 'Ama Owusu',
        transaction_date: op.date,
        transaction_amount: renderAmount(op.amount, op.currency),
        transaction_type: op.type,
        currency: op.currency,
      });
      expect(res.statusCode, res.body).toBe(201);
      ledger.created.push(res.json<{ data: { id: string } }>().data.id);
      return;
    }
    case 'update': {
      const id = ledger.created[op.target % Math.max(ledger.created.length, 1)];
      if (id === undefined) return;
      const body = patchBody(op.patch);
      const res = await inject(op.method, `/api/v1/transaction/${id}`, body);
      if (res.statusCode === 404) {
        ledger.notFound.add(id);
        return;
      }
      if (
        res.statusCode === 422 &&
        body.currency !== undefined &&
        !('transaction_amount' in body)
      ) {
        // The current amount has more decimals than the new currency allows: nothing changed.
        const detail = res.json<ErrorResponse>().detail ?? [];
        expect(
          detail.map((d) => d.loc),
          res.body,
        ).toEqual([['body', 'currency']]);
        return;
      }
      expect(res.statusCode, `${JSON.stringify(body)} → ${res.body}`).toBe(200);
      return;
    }
    case 'delete': {
      const id = ledger.created[op.target % Math.max(ledger.created.length, 1)];
      if (id === undefined) return;
      const res = await inject('DELETE', `/api/v1/transaction/${id}`);
      if (res.statusCode === 404) {
        ledger.notFound.add(id);
        return;
      }
      expect(res.statusCode, res.body).toBe(200);
      ledger.deleted.push(id);
      return;
    }
    case 'read': {
      const user = users[op.user % users.length]!;
      if (!op.range) {
        const res = await inject('GET', `/api/v1/analytics/${user}?currency=${op.currency}`);
        if (res.statusCode === 404) return;
        expect(res.statusCode, res.body).toBe(200);
        expectConsistent(res.json<{ data: AnalyticsData }>().data);
        return;
      }
      const { start, end } = resolveRange(op.range, []);
      const res = await inject(
        'GET',
        url(`/api/v1/analytics/range/${user}`, {
          currency: op.currency,
          start_date: start?.text,
          end_date: end?.text,
        }),
      );
      if (res.statusCode === 404) return;
      expect(res.statusCode, res.body).toBe(200);
      expectConsistent(res.json<{ data: AnalyticsData }>().data, {
        start: start?.ms,
        end: end?.ms,
      });
      return;
    }
  }
}

type AnalyticsData = Record<string, unknown> & {
  currency: string;
  transaction_count: number;
  credit_count: number;
  debit_count: number;
  credit_total_minor: string;
  debit_total_minor: string;
  net_total_minor: string;
  average_transaction_value: number;
  credit_total: number;
  debit_total: number;
  net_total: number;
  highest_transactions_day: string;
  highest_transactions_day_count: number;
  first_transaction_date: string;
  last_transaction_date: string;
  last_updated: string;
};

/** What any single answer must satisfy, even one read mid-flight. */
function expectConsistent(data: AnalyticsData, bounds: Bounds = {}): void {
  const what = JSON.stringify(data);
  const credit = BigInt(data.credit_total_minor);
  const debit = BigInt(data.debit_total_minor);
  const exponent = exponentOf(data.currency);
  expect(data.transaction_count, what).toBe(data.credit_count + data.debit_count);
  expect(data.transaction_count, what).toBeGreaterThan(0);
  expect(BigInt(data.net_total_minor), what).toBe(credit - debit);
  expect(data.credit_total, what).toBe(majorNumber(credit, exponent));
  expect(data.debit_total, what).toBe(majorNumber(debit, exponent));
  expect(data.net_total, what).toBe(majorNumber(credit - debit, exponent));
  expect(data.average_transaction_value, what).toBe(
    majorNumber(roundHalfEven(credit + debit, BigInt(data.transaction_count)), exponent),
  );
  expect(data.highest_transactions_day_count, what).toBeGreaterThan(0);
  expect(data.highest_transactions_day_count, what).toBeLessThanOrEqual(data.transaction_count);
  const first = Date.parse(data.first_transaction_date);
  const last = Date.parse(data.last_transaction_date);
  expect(first <= last, what).toBe(true);
  expect(inBounds(first, bounds) && inBounds(last, bounds), what).toBe(true);
  expect(data.highest_transactions_day >= localDay(first, TIME_ZONE), what).toBe(true);
  expect(data.highest_transactions_day <= localDay(last, TIME_ZONE), what).toBe(true);
  expect(Number.isNaN(Date.parse(data.last_updated)), what).toBe(false);
}

// ---------------------------------------------------------------------------------------------
// Reading back

function inList(values: readonly string[]) {
  return sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  );
}

async function readRawRows(users: readonly string[]): Promise<RawRow[]> {
  const rows = await queryRows<{
    id: string;
    user_id: string;
    currency: string;
    transaction_date: string | Date;
    date_ms: string | number;
    transaction_type: TransactionType;
    amount_minor: string | number;
  }>(
    context.database.handle.db,
    sql`select id::text as id, user_id, currency, transaction_date, transaction_type,
      amount_minor::text as amount_minor,
      (extract(epoch from transaction_date) * 1000)::int8::text as date_ms
    from transactions where user_id in (${inList(users)})`,
  );
  return rows.map((r) => {
    const dateMs = Number(r.date_ms);
    expect(new Date(r.transaction_date).getTime()).toBe(dateMs);
    return {
      id: r.id,
      userId: r.user_id,
      currency: r.currency,
      dateMs,
      type: r.transaction_type,
      amountMinor: BigInt(r.amount_minor),
    };
  });
}

async function readRollups(
  users: readonly string[],
): Promise<{ userStats: StatsRow[]; dailyStats: DailyStatsRow[] }> {
  const db = context.database.handle.db;
  const stats = await queryRows<StatsRow>(
    db,
    sql`select user_id, currency, transaction_count, credit_count, debit_count,
      credit_total_minor::text as credit_total_minor, debit_total_minor::text as debit_total_minor
    from user_stats where user_id in (${inList(users)})`,
  );
  const daily = await queryRows<DailyStatsRow>(
    db,
    sql`select user_id, currency, day::text as day, transaction_count, credit_count, debit_count,
      credit_total_minor::text as credit_total_minor, debit_total_minor::text as debit_total_minor
    from user_daily_stats where user_id in (${inList(users)})`,
  );
  const counts = <T extends StatsRow>(row: T): T => ({
    ...row,
    transaction_count: Number(row.transaction_count),
    credit_count: Number(row.credit_count),
    debit_count: Number(row.debit_count),
  });
  return { userStats: sortStats(stats.map(counts)), dailyStats: sortDaily(daily.map(counts)) };
}

/** The bound's query text and instant; `rows` are the user's rows in that currency. */
function resolveBound(spec: BoundSpec, rows: readonly RawRow[]): { text: string; ms: number } {
  switch (spec.kind) {
    case 'date': {
      const day = ymd(FIRST_DAY_MS + spec.day * DAY_MS);
      return { text: day, ms: localMidnight(day, TIME_ZONE) };
    }
    case 'instant':
      return { text: renderInstant(spec.text), ms: spec.text.ms };
    case 'row': {
      const row = rows[spec.index % Math.max(rows.length, 1)];
      const ms = (row?.dateMs ?? FIRST_DAY_MS) + spec.delta;
      return { text: renderInstant({ ...spec.text, ms }), ms };
    }
  }
}

/** Both bounds, in order: the API refuses a start after the end. */
function resolveRange(range: RangeSpec, rows: readonly RawRow[]) {
  let start = range.start && resolveBound(range.start, rows);
  let end = range.end && resolveBound(range.end, rows);
  if (start && end && start.ms > end.ms) [start, end] = [end, start];
  return { start, end };
}

const url = (path: string, query: Record<string, string | undefined>) => {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) params.set(name, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
};

/** How a currency is asked for: the default (GHS) by omission, others in either case. */
function currencyParam(currency: Currency): string | undefined {
  if (currency === 'GHS') return undefined;
  return currency === 'JPY' ? 'jpy' : currency;
}

async function checkAnswers(scenario: Scenario, users: readonly string[], rows: RawRow[]) {
  for (const user of users) {
    for (const currency of CURRENCIES) {
      const expected = expectedAnalytics(rows, user, currency, TIME_ZONE);
      const allTime = await inject(
        'GET',
        url(`/api/v1/analytics/${user}`, { currency: currencyParam(currency) }),
      );
      let lastUpdated: string | undefined;
      if (expected) {
        expect(allTime.statusCode, allTime.body).toBe(200);
        const data = allTime.json<{ data: AnalyticsData }>().data;
        expect(data).toEqual({ ...expected, last_updated: expect.any(String) });
        expectConsistent(data);
        lastUpdated = data.last_updated;
      } else {
        expect(allTime.statusCode, allTime.body).toBe(404);
        expect(allTime.json<ErrorResponse>().code).toBe('ANALYTICS_NOT_FOUND');
      }

      const mine = rows
        .filter((r) => r.userId === user && r.currency === currency)
        .sort((a, b) => a.dateMs - b.dateMs);
      for (const range of scenario.ranges) {
        const { start, end } = resolveRange(range, mine);
        const bounds: Bounds = { start: start?.ms, end: end?.ms };
        const expectedRange = expectedAnalytics(rows, user, currency, TIME_ZONE, bounds);
        const res = await inject(
          'GET',
          url(`/api/v1/analytics/range/${user}`, {
            currency: currencyParam(currency),
            start_date: start?.text,
            end_date: end?.text,
          }),
        );
        const what = `range ${start?.text ?? '-'} .. ${end?.text ?? '-'} for ${user} ${currency}`;
        if (!expectedRange) {
          expect(res.statusCode, `${what}: ${res.body}`).toBe(404);
          continue;
        }
        expect(res.statusCode, `${what}: ${res.body}`).toBe(200);
        const data = res.json<{ data: AnalyticsData }>().data;
        expect(data, what).toEqual({
          ...expectedRange,
          last_updated: lastUpdated,
          start_date: start ? new Date(start.ms).toISOString() : null,
          end_date: end ? new Date(end.ms).toISOString() : null,
        });
      }
    }
  }
}

async function runScenario(scenario: Scenario): Promise<void> {
  const users = Array.from({ length: scenario.userCount }, () => uniqueUserId('prop'));
  const ledger: Ledger = { created: [], deleted: [], notFound: new Set() };
  const queues = Array.from({ length: scenario.clientCount }, () => [] as Op[]);
  for (const { client, op } of scenario.ops) queues[client % scenario.clientCount]!.push(op);
  await Promise.all(
    queues.map(async (queue) => {
      for (const op of queue) await runOp(op, users, ledger);
    }),
  );

  const rows = await readRawRows(users);

  // The rows are what the API said happened: created and not deleted, each deleted at most once,
  // and a 404 only for a transaction some client deleted.
  const deleted = new Set(ledger.deleted);
  expect(ledger.deleted.length, 'an id deleted twice').toBe(deleted.size);
  expect(rows.map((r) => r.id).sort()).toEqual(
    ledger.created.filter((id) => !deleted.has(id)).sort(),
  );
  for (const id of ledger.notFound) expect(deleted.has(id), `404 for live ${id}`).toBe(true);

  // The rollups are exactly a group-by of the rows: no drift, no empty rows left behind.
  const actualRollups = await readRollups(users);
  const wantedRollups = expectedRollups(rows, TIME_ZONE);
  expect(actualRollups.userStats).toEqual(wantedRollups.userStats);
  expect(actualRollups.dailyStats).toEqual(wantedRollups.dailyStats);

  await checkAnswers(scenario, users, rows);
}

describe('analytics under concurrent random writes', () => {
  it('equal a naive recomputation from the raw rows, to the minor unit', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, runScenario), { numRuns: NUM_RUNS });
  }, 300_000);

  it('rests on a model that gives the known answers', () => {
    const row = (iso: string, type: TransactionType, amountMinor: bigint): RawRow => ({
      id: iso + type,
      userId: 'fixture',
      currency: 'GHS',
      dateMs: Date.parse(iso),
      type,
      amountMinor,
    });
    const fixture = [
      row('2024-10-10T09:00:00Z', 'credit', 10_000n),
      row('2024-10-10T09:00:00Z', 'debit', 5_000n),
      row('2024-10-10T18:00:00Z', 'debit', 3_000n),
      row('2024-10-11T09:00:00Z', 'credit', 2_000n),
    ];
    expect(expectedAnalytics(fixture, 'fixture', 'GHS', 'UTC')).toMatchObject({
      average_transaction_value: 50,
      highest_transactions_day: '2024-10-10',
      highest_transactions_day_count: 3,
      credit_total_minor: '12000',
      net_total: 40,
      first_transaction_date: '2024-10-10T09:00:00.000Z',
    });
    const afternoon = { start: Date.parse('2024-10-10T12:00:00Z') };
    expect(expectedAnalytics(fixture, 'fixture', 'GHS', 'UTC', afternoon)).toMatchObject({
      transaction_count: 2,
      credit_total: 20,
      debit_total: 30,
    });
    expect(expectedAnalytics(fixture, 'fixture', 'JPY', 'UTC')).toBeUndefined();
    expect([15n, 25n, -15n, 16n].map((n) => roundHalfEven(n, 10n))).toEqual([2n, 2n, -2n, 2n]);
    expect(fixedDecimal(5n, 3)).toBe('0.005');
    const midnight = localMidnight('2024-02-29', TIME_ZONE);
    expect(localDay(midnight, TIME_ZONE)).toBe('2024-02-29');
    expect(localDay(midnight - 1, TIME_ZONE)).toBe('2024-02-28');
    expect(localMidnight('2024-03-10', 'America/Havana')).toBe(Date.parse('2024-03-10T05:00:00Z'));
  });
});
