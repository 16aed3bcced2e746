import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { useTestApp } from '../helpers/app.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';
import type { ErrorBody as ErrorResponse } from '../../src/platform/http-errors.js';

interface TransactionView {
  id: string;
  user_id: string;
  full_name: string;
  transaction_date: string;
  transaction_amount: number;
  transaction_type: 'credit' | 'debit';
  currency: string;
}

interface HistoryBody {
  data: TransactionView[];
  code: number;
  message: string;
  pagination: { limit: number; next_cursor: string | null; has_more: boolean };
}

interface Key {
  id: string;
  transaction_date: string;
}

const context = useTestApp();

async function create(overrides: Record<string, unknown>): Promise<TransactionView> {
  const res = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody(overrides),
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ data: TransactionView }>().data;
}

/** Creates the rows through the API, `chunk` requests at a time, in input order per chunk. */
async function createMany(
  bodies: Record<string, unknown>[],
  chunk = 50,
): Promise<TransactionView[]> {
  const created: TransactionView[] = [];
  for (let i = 0; i < bodies.length; i += chunk) {
    created.push(...(await Promise.all(bodies.slice(i, i + chunk).map(create))));
  }
  return created;
}

function historyUrl(userId: string, query: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) params.set(name, value);
  }
  const text = params.toString();
  return `/api/v1/transaction/history/${encodeURIComponent(userId)}${text ? `?${text}` : ''}`;
}

async function getHistory(userId: string, query: Record<string, string | undefined> = {}) {
  return context.app.inject({ method: 'GET', url: historyUrl(userId, query) });
}

/** Newest first; among equal dates the larger id first (UUIDs compare like their hex text). */
function compareHistory(a: Key, b: Key): number {
  const da = Date.parse(a.transaction_date);
  const db_ = Date.parse(b.transaction_date);
  if (da !== db_) return db_ - da;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function sortedForHistory<T extends Key>(rows: readonly T[]): T[] {
  return [...rows].sort(compareHistory);
}

/**
 * Follows next_cursor to the end, checking each page's envelope. `between` runs after every page
 * that has a successor, before the successor is read.
 */
async function walk(
  userId: string,
  limit: number | undefined,
  filters: Record<string, string | undefined> = {},
  between?: (pageIndex: number) => Promise<void>,
): Promise<{ rows: TransactionView[]; pages: HistoryBody[] }> {
  const rows: TransactionView[] = [];
  const pages: HistoryBody[] = [];
  let cursor: string | undefined;
  for (let pageIndex = 0; ; pageIndex++) {
    if (pageIndex > 5_000) throw new Error('pagination does not terminate');
    const res = await getHistory(userId, {
      ...filters,
      limit: limit === undefined ? undefined : String(limit),
      cursor,
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<HistoryBody>();
    expect(body.code).toBe(200);
    expect(body.message).toBe('Transaction history retrieved successfully');
    expect(body.pagination.limit).toBe(limit ?? 100);
    expect(body.data.length).toBeLessThanOrEqual(limit ?? 100);
    pages.push(body);
    rows.push(...body.data);
    if (!body.pagination.has_more) {
      expect(body.pagination.next_cursor).toBeNull();
      return { rows, pages };
    }
    // A page that says there is more is full, and carries a cursor.
    expect(body.data).toHaveLength(limit ?? 100);
    expect(typeof body.pagination.next_cursor).toBe('string');
    cursor = body.pagination.next_cursor!;
    await between?.(pageIndex);
  }
}

function idsOf(rows: readonly Key[]): string[] {
  return rows.map((row) => row.id);
}

function expectStrictlyDescending(rows: readonly Key[]): void {
  for (let i = 1; i < rows.length; i++) {
    const previous = rows[i - 1]!;
    const current = rows[i]!;
    if (compareHistory(previous, current) >= 0) {
      throw new Error(
        `rows ${i - 1} and ${i} are out of order: ${JSON.stringify(previous)} then ${JSON.stringify(current)}`,
      );
    }
  }
}

function validationLocs(res: { body: string }): (string | number)[][] {
  const body = JSON.parse(res.body) as ErrorResponse;
  return (body.detail ?? []).map((issue) => issue.loc);
}

const CLUSTER_A = '2024-06-01T12:00:00.000Z';
const CLUSTER_B = '2024-06-01T12:00:00.001Z';

/** Many identical timestamps (the id breaks ties), 1 ms apart clusters, date-only values, spread. */
function dateFor(i: number): string {
  switch (i % 4) {
    case 0:
      return CLUSTER_A;
    case 1:
      return CLUSTER_B;
    case 2:
      return `2024-05-${String((i % 28) + 1).padStart(2, '0')}`;
    default:
      return new Date(Date.UTC(2023, 0, 1) + i * 3_600_123).toISOString();
  }
}

describe('walking 1,000 rows with keyset pagination', () => {
  const userId = uniqueUserId('pager');
  let created: TransactionView[] = [];

  beforeAll(async () => {
    const bodies = Array.from({ length: 1_000 }, (_, i) => ({
      user_id: userId,
      full_name: `Pager Person ${i}`,
      transaction_date: dateFor(i),
      transaction_amount: (i % 50) + 1,
      transaction_type: i % 2 === 0 ? 'credit' : 'debit',
    }));
    created = await createMany(bodies);
  });

  it('created 1,000 rows with many identical dates', async () => {
    expect(created).toHaveLength(1_000);
    expect(created.filter((row) => row.transaction_date === CLUSTER_A)).toHaveLength(250);
    expect(created.filter((row) => row.transaction_date === CLUSTER_B)).toHaveLength(250);
    const [count] = await queryRows<{ n: number }>(
      context.database.handle.db,
      sql`select count(*)::int as n from transactions where user_id = ${userId}`,
    );
    expect(count?.n).toBe(1_000);
  });

  it('returns every row exactly once, in (transaction_date desc, id desc) order, 37 at a time', async () => {
    const { rows, pages } = await walk(userId, 37);
    expect(pages).toHaveLength(Math.ceil(1_000 / 37));
    expect(pages.at(-1)!.data).toHaveLength(1_000 - 37 * (pages.length - 1));
    expect(rows).toHaveLength(1_000);
    expect(new Set(idsOf(rows)).size).toBe(1_000);
    expect(idsOf(rows)).toEqual(idsOf(sortedForHistory(created)));
    expectStrictlyDescending(rows);
    // What is listed is what was created, name included.
    const byId = new Map(created.map((row) => [row.id, row]));
    for (const row of rows) expect(row).toEqual(byId.get(row.id));
  });

  it('gives the same sequence whatever the page size', async () => {
    const expected = idsOf(sortedForHistory(created));
    for (const limit of [500, 499, 250, 333, 1]) {
      const { rows, pages } = await walk(userId, limit);
      expect(pages).toHaveLength(Math.ceil(1_000 / limit));
      expect(idsOf(rows)).toEqual(expected);
    }
  });

  it('ends with has_more false and no cursor when the last page is exactly full', async () => {
    // 1,000 = 8 × 125: the eighth page is full and still the last.
    const { pages } = await walk(userId, 125);
    expect(pages).toHaveLength(8);
    expect(pages.at(-1)!.data).toHaveLength(125);
    expect(pages.at(-1)!.pagination).toEqual({ limit: 125, next_cursor: null, has_more: false });
  });

  it('never repeats or skips a pre-existing row while rows are inserted concurrently', async () => {
    const original = new Set(created.map((row) => row.id));
    const inserted = new Set<string>();
    const mustAppear = new Set<string>();
    const mustNotAppear = new Set<string>();
    let stop = false;

    // Writers racing the walk: dates before, inside and after the existing range, some equal to
    // the big cluster so that only the id decides where they fall.
    const background = (async () => {
      const dates = [CLUSTER_A, CLUSTER_B, '2021-03-03T03:03:03.003Z', '2024-11-30T00:00:00Z'];
      for (let i = 0; !stop && i < 400; i++) {
        const row = await create({
          user_id: userId,
          full_name: `Racer ${i}`,
          transaction_date: dates[i % dates.length],
        });
        inserted.add(row.id);
      }
    })();

    const { rows } = await walk(userId, 37, {}, async (pageIndex) => {
      // Older than every row so far (the walk has not reached any of them): must appear.
      const older = await create({
        user_id: userId,
        full_name: `Older ${pageIndex}`,
        transaction_date: new Date(Date.UTC(2020, 0, 1) - pageIndex).toISOString(),
      });
      // Newer than every row so far, so behind the cursor: must not appear.
      const newer = await create({
        user_id: userId,
        full_name: `Newer ${pageIndex}`,
        transaction_date: new Date(Date.UTC(2024, 11, 31) + pageIndex).toISOString(),
      });
      for (const row of [older, newer]) inserted.add(row.id);
      mustAppear.add(older.id);
      mustNotAppear.add(newer.id);
    });
    stop = true;
    await background;

    const ids = idsOf(rows);
    expect(new Set(ids).size).toBe(ids.length);
    expectStrictlyDescending(rows);
    const seen = new Set(ids);
    expect([...original].filter((id) => !seen.has(id))).toEqual([]);
    expect(ids.filter((id) => !original.has(id) && !inserted.has(id))).toEqual([]);
    expect(mustAppear.size).toBeGreaterThan(20);
    expect([...mustAppear].filter((id) => !seen.has(id))).toEqual([]);
    expect([...mustNotAppear].filter((id) => seen.has(id))).toEqual([]);
  });
});

describe('filters', () => {
  const userId = uniqueUserId('filters');
  const rows: Record<string, TransactionView> = {};

  beforeAll(async () => {
    const specs = {
      feb28: {
        transaction_date: '2024-02-28T12:00:00Z',
        transaction_type: 'credit',
        currency: 'EUR',
      },
      mar1Midnight: { transaction_date: '2024-03-01', transaction_type: 'credit', currency: 'GHS' },
      mar1Late: {
        transaction_date: '2024-03-01T23:59:59.999Z',
        transaction_type: 'debit',
        currency: 'GHS',
      },
      mar2Midnight: {
        transaction_date: '2024-03-02T00:00:00Z',
        transaction_type: 'credit',
        currency: 'USD',
      },
      mar5: {
        transaction_date: '2024-03-05T10:00:00+02:00',
        transaction_type: 'debit',
        currency: 'usd',
      },
    } as const;
    for (const [name, spec] of Object.entries(specs)) {
      rows[name] = await create({ user_id: userId, ...spec });
    }
  });

  async function filtered(query: Record<string, string>): Promise<string[]> {
    const { rows: listed } = await walk(userId, 2, query);
    return listed.map(
      (row) => Object.entries(rows).find(([, r]) => r.id === row.id)?.[0] ?? row.id,
    );
  }

  it('stores date-only as midnight UTC and offsets converted to UTC', () => {
    expect(rows.mar1Midnight!.transaction_date).toBe('2024-03-01T00:00:00.000Z');
    expect(rows.mar5!.transaction_date).toBe('2024-03-05T08:00:00.000Z');
    expect(rows.mar5!.currency).toBe('USD');
  });

  it('start_date is inclusive, and a date means its midnight UTC', async () => {
    expect(await filtered({ start_date: '2024-03-01' })).toEqual([
      'mar5',
      'mar2Midnight',
      'mar1Late',
      'mar1Midnight',
    ]);
    expect(await filtered({ start_date: '2024-03-01T00:00:00.001Z' })).toEqual([
      'mar5',
      'mar2Midnight',
      'mar1Late',
    ]);
    expect(await filtered({ start_date: '2024-03-01T01:00:00+01:00' })).toEqual([
      'mar5',
      'mar2Midnight',
      'mar1Late',
      'mar1Midnight',
    ]);
  });

  it('end_date is inclusive, and a date means its midnight UTC (not the end of that day)', async () => {
    expect(await filtered({ end_date: '2024-03-02' })).toEqual([
      'mar2Midnight',
      'mar1Late',
      'mar1Midnight',
      'feb28',
    ]);
    expect(await filtered({ end_date: '2024-03-01' })).toEqual(['mar1Midnight', 'feb28']);
    expect(await filtered({ end_date: '2024-03-01T23:59:59.998Z' })).toEqual([
      'mar1Midnight',
      'feb28',
    ]);
  });

  it('start_date and end_date together bound both ends; equal bounds match that instant', async () => {
    expect(await filtered({ start_date: '2024-03-01', end_date: '2024-03-02' })).toEqual([
      'mar2Midnight',
      'mar1Late',
      'mar1Midnight',
    ]);
    expect(
      await filtered({ start_date: '2024-03-05T08:00:00Z', end_date: '2024-03-05T08:00:00Z' }),
    ).toEqual(['mar5']);
  });

  it('filters by transaction_type and by currency (any case)', async () => {
    expect(await filtered({ transaction_type: 'debit' })).toEqual(['mar5', 'mar1Late']);
    expect(await filtered({ transaction_type: 'credit' })).toEqual([
      'mar2Midnight',
      'mar1Midnight',
      'feb28',
    ]);
    expect(await filtered({ currency: 'usd' })).toEqual(['mar5', 'mar2Midnight']);
    expect(await filtered({ currency: 'GHS' })).toEqual(['mar1Late', 'mar1Midnight']);
  });

  it('combines all filters', async () => {
    expect(
      await filtered({
        start_date: '2024-03-01',
        end_date: '2024-03-31',
        transaction_type: 'credit',
        currency: 'USD',
      }),
    ).toEqual(['mar2Midnight']);
  });

  it('answers 200 with an empty page when filters exclude every row', async () => {
    for (const query of [
      { currency: 'JPY' },
      { start_date: '2025-01-01' },
      { end_date: '2000-01-01' },
      { transaction_type: 'debit', currency: 'EUR' },
    ]) {
      const res = await getHistory(userId, query);
      expect(res.statusCode, JSON.stringify(query)).toBe(200);
      const body = res.json<HistoryBody>();
      expect(body.data).toEqual([]);
      expect(body.code).toBe(200);
      expect(body.pagination).toEqual({ limit: 100, next_cursor: null, has_more: false });
    }
  });

  it('answers 200 with an empty page for a cursor past the last row', async () => {
    const first = await getHistory(userId, { limit: '4' });
    const cursor = first.json<HistoryBody>().pagination.next_cursor;
    expect(cursor).not.toBeNull();
    const last = await getHistory(userId, { limit: '4', cursor: cursor! });
    const lastBody = last.json<HistoryBody>();
    expect(idsOf(lastBody.data)).toEqual([rows.feb28!.id]);
    expect(lastBody.pagination.has_more).toBe(false);
    // Past the end: the cursor of the only remaining row.
    const beyond = Buffer.from(
      `${Date.parse(rows.feb28!.transaction_date)}.${rows.feb28!.id}`,
    ).toString('base64url');
    const res = await getHistory(userId, { cursor: beyond });
    expect(res.statusCode).toBe(200);
    expect(res.json<HistoryBody>().data).toEqual([]);
  });

  it('matches a model of the filters for arbitrary windows, types, currencies and page sizes', async () => {
    const all = Object.values(rows);
    const instants = [
      ...all.map((row) => row.transaction_date),
      '2024-03-01',
      '2024-03-02',
      '2024-02-29',
      '2024-03-05T08:00:00.001Z',
      '2024-03-05T07:59:59.999Z',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.constantFrom(...instants), { nil: undefined }),
        fc.option(fc.constantFrom(...instants), { nil: undefined }),
        fc.option(fc.constantFrom('credit', 'debit'), { nil: undefined }),
        fc.option(fc.constantFrom('GHS', 'usd', 'EUR', 'JPY'), { nil: undefined }),
        fc.integer({ min: 1, max: 6 }),
        async (start, end, type, currency, limit) => {
          const startMs = start === undefined ? undefined : Date.parse(start);
          const endMs = end === undefined ? undefined : Date.parse(end);
          const query = { start_date: start, end_date: end, transaction_type: type, currency };
          if (startMs !== undefined && endMs !== undefined && startMs > endMs) {
            const res = await getHistory(userId, query);
            expect(res.statusCode).toBe(422);
            expect(validationLocs(res)).toContainEqual(['query', 'start_date']);
            return;
          }
          const expected = sortedForHistory(
            all.filter((row) => {
              const t = Date.parse(row.transaction_date);
              return (
                (startMs === undefined || t >= startMs) &&
                (endMs === undefined || t <= endMs) &&
                (type === undefined || row.transaction_type === type) &&
                (currency === undefined || row.currency === currency.toUpperCase())
              );
            }),
          );
          const { rows: listed } = await walk(userId, limit, query);
          expect(idsOf(listed)).toEqual(idsOf(expected));
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('the default page size', () => {
  it('is 100', async () => {
    const userId = uniqueUserId('default-limit');
    await createMany(
      Array.from({ length: 120 }, (_, i) => ({
        user_id: userId,
        transaction_date: new Date(Date.UTC(2024, 0, 1) + (i % 7) * 60_000).toISOString(),
      })),
    );
    const res = await getHistory(userId);
    expect(res.statusCode).toBe(200);
    const first = res.json<HistoryBody>();
    expect(first.data).toHaveLength(100);
    expect(first.pagination.limit).toBe(100);
    expect(first.pagination.has_more).toBe(true);
    expect(first.pagination.next_cursor).toEqual(expect.any(String));

    const second = await getHistory(userId, { cursor: first.pagination.next_cursor! });
    const secondBody = second.json<HistoryBody>();
    expect(secondBody.data).toHaveLength(20);
    expect(secondBody.pagination).toEqual({ limit: 100, next_cursor: null, has_more: false });
    expect(new Set([...idsOf(first.data), ...idsOf(secondBody.data)]).size).toBe(120);
  });
});

describe('errors', () => {
  const userId = uniqueUserId('errors');

  beforeAll(async () => {
    await create({ user_id: userId });
  });

  it('answers 404 for a user with no transactions, with or without filters and cursor', async () => {
    const unknown = uniqueUserId('nobody');
    const cursor = Buffer.from(
      `${Date.UTC(2024, 0, 1)}.0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b`,
    ).toString('base64url');
    for (const query of [{}, { currency: 'GHS' }, { start_date: '2024-01-01' }, { cursor }]) {
      const res = await getHistory(unknown, query);
      expect(res.statusCode, JSON.stringify(query)).toBe(404);
      const body = res.json<ErrorResponse>();
      expect(body.code).toBe('TRANSACTION_HISTORY_NOT_FOUND');
      expect(body.message).toBe(`Transaction history not found for user ID ${unknown}`);
      expect(body.name).toBe('FidoTransactionsAPI');
    }
  });

  it.each(['0', '501', 'abc', '-1', '1.5', ''])(
    'refuses limit=%j with 422 naming the limit',
    async (limit) => {
      const res = await getHistory(userId, { limit });
      expect(res.statusCode).toBe(422);
      const body = res.json<ErrorResponse>();
      expect(body.code).toBe('VALIDATION_FAILED');
      expect(validationLocs(res)).toContainEqual(['query', 'limit']);
    },
  );

  it('accepts the boundary limits 1 and 500', async () => {
    for (const limit of ['1', '500']) {
      const res = await getHistory(userId, { limit });
      expect(res.statusCode).toBe(200);
      expect(res.json<HistoryBody>().pagination.limit).toBe(Number(limit));
    }
  });

  it.each([
    ['not base64url', 'abc!def'],
    ['base64url of garbage', Buffer.from('hello world').toString('base64url')],
    ['a bad id', Buffer.from('1717243200000.not-a-uuid').toString('base64url')],
    ['no timestamp', Buffer.from('.0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b').toString('base64url')],
    ['too long', 'A'.repeat(201)],
  ])('refuses a malformed cursor (%s) with 422 naming the cursor', async (_label, cursor) => {
    const res = await getHistory(userId, { cursor });
    expect(res.statusCode).toBe(422);
    expect(res.json<ErrorResponse>().code).toBe('VALIDATION_FAILED');
    expect(validationLocs(res)).toContainEqual(['query', 'cursor']);
  });

  it('refuses start_date after end_date with 422', async () => {
    const res = await getHistory(userId, { start_date: '2024-03-02', end_date: '2024-03-01' });
    expect(res.statusCode).toBe(422);
    const body = res.json<ErrorResponse>();
    expect(body.code).toBe('VALIDATION_FAILED');
    expect(validationLocs(res)).toContainEqual(['query', 'start_date']);
  });

  it.each([
    ['start_date', 'yesterday'],
    ['end_date', '2024-02-30'],
    ['start_date', '2024-13-01'],
  ])('refuses %s=%j with 422 naming it', async (name, value) => {
    const res = await getHistory(userId, { [name]: value });
    expect(res.statusCode).toBe(422);
    expect(validationLocs(res)).toContainEqual(['query', name]);
  });

  it('refuses an unknown transaction_type and a malformed currency with 422', async () => {
    const type = await getHistory(userId, { transaction_type: 'refund' });
    expect(type.statusCode).toBe(422);
    expect(validationLocs(type)).toContainEqual(['query', 'transaction_type']);
    const currency = await getHistory(userId, { currency: 'US' });
    expect(currency.statusCode).toBe(422);
    expect(validationLocs(currency)).toContainEqual(['query', 'currency']);
  });
});
