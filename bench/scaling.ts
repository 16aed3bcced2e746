/**
 * History and analytics must not get slower as data grows. Two dimensions, in one run:
 *
 * - the table: a user with 100 transactions, measured when the table holds 10^3 rows (10 users)
 *   and again once the bulk loader has brought it to 10^6 rows across 10^4 users (plus the two
 *   users below);
 * - the user: a user with 10^3 transactions against one with 10^6 (BENCH_LARGE_ROWS), in the same
 *   table.
 *
 * Each query is sent 300 times in sequence over HTTP on 127.0.0.1 to the API in this process,
 * its read cache bypassed (every request is computed); p50 and p99 are compared as ratios, and the
 * target is a p50 ratio of at most 1.5. After loading, reconciliation checks the loader kept every
 * rollup exact.
 *
 *   npm run bench -- --scenario scaling            (embedded PGlite)
 *   BENCH_DATABASE_URL=postgres://… npm run bench -- --scenario scaling
 */
import { randomBytes } from 'node:crypto';
import { buildApp } from '../src/app.js';
import { reconcileUser } from '../src/modules/analytics/index.js';
import { FieldCipher } from '../src/platform/crypto.js';
import { inProcessConfig, listen, openBenchDatabase, uncachedStore } from './http.js';
import { analyzeTables, bulkLoad } from './seed.js';

const PER_USER = 100;
const SMALL_TABLE_USERS = 10;
const LARGE_TABLE_USERS = 10_000;
const MID_ROWS = 1_000;
const LARGE_ROWS = Number(process.env.BENCH_LARGE_ROWS ?? 1_000_000);
const DAYS = 730;
const END = new Date('2026-06-30T12:00:00Z');
const REQUESTS = 300;
const WARMUP = 30;
const TARGET_RATIO = 1.5;

interface Stats {
  p50: number;
  p99: number;
}

async function timeRequests(url: string): Promise<Stats> {
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + REQUESTS; i += 1) {
    const started = process.hrtime.bigint();
    const response = await fetch(url).catch((error: unknown) => {
      // A kept-alive connection the server closed while a load held this thread (PGlite runs
      // here) fails the first request that reuses it: retried during the warm-up only.
      if (i < WARMUP) return fetch(url);
      throw error;
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    if (i >= WARMUP) samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

const QUERIES = {
  'history page 1': (user: string) => `/api/v1/transaction/history/${user}`,
  'analytics all-time': (user: string) => `/api/v1/analytics/${user}`,
  'analytics one-year range': (user: string) =>
    `/api/v1/analytics/range/${user}?start_date=2025-07-01T08:30:00Z&end_date=2026-06-30T17:45:00Z`,
} as const;

type Measured = Record<keyof typeof QUERIES, Stats>;

async function measure(base: string, user: string): Promise<Measured> {
  const out: Partial<Measured> = {};
  for (const [label, path] of Object.entries(QUERIES) as [
    keyof typeof QUERIES,
    (u: string) => string,
  ][]) {
    out[label] = await timeRequests(`${base}${path(user)}`);
  }
  return out as Measured;
}

export async function scaling(): Promise<void> {
  const database = await openBenchDatabase();
  const keyRing = { activeKeyId: 'bench', keys: new Map([['bench', randomBytes(32)]]) };
  const cipher = new FieldCipher(keyRing);
  const db = database.handle.db;
  const runId = randomBytes(3).toString('hex');
  const users = (prefix: string, count: number) =>
    Array.from({ length: count }, (_, i) => `${prefix}-${runId}-${i}`);
  const probe = `probe-${runId}`;
  const mid = `mid-${runId}`;
  const large = `large-${runId}`;
  const load = { perUser: PER_USER, days: DAYS, end: END };
  const app = await buildApp(inProcessConfig(), {
    database: database.handle,
    keyRing,
    // The same URL is requested hundreds of times: with the read cache, every request after the
    // first would measure the cache, not the query whose scaling this is about.
    cacheStore: uncachedStore(),
  });
  try {
    const base = await listen(app);

    await bulkLoad(db, cipher, {
      ...load,
      userIds: [probe, ...users('small', SMALL_TABLE_USERS - 1)],
    });
    await analyzeTables(db);
    const smallTable = await measure(base, probe);

    const started = Date.now();
    let last = 0;
    const loaded =
      (await bulkLoad(db, cipher, {
        ...load,
        userIds: users('bulk', LARGE_TABLE_USERS - SMALL_TABLE_USERS),
        progress: (rows) => {
          if (rows - last >= 250_000) {
            last = rows;
            console.log(`  loaded ${rows} rows in ${((Date.now() - started) / 1000).toFixed(0)} s`);
          }
        },
      })) +
      (await bulkLoad(db, cipher, { ...load, userIds: [mid], perUser: MID_ROWS })) +
      (await bulkLoad(db, cipher, { ...load, userIds: [large], perUser: LARGE_ROWS }));
    await analyzeTables(db);
    const seconds = (Date.now() - started) / 1000;
    const tableRows = loaded + SMALL_TABLE_USERS * PER_USER;
    console.log(
      `bulk-loaded ${loaded} rows (${LARGE_TABLE_USERS - SMALL_TABLE_USERS} users × ${PER_USER}, ` +
        `1 × ${MID_ROWS}, 1 × ${LARGE_ROWS}) in ${seconds.toFixed(0)} s, ` +
        `${Math.round(loaded / seconds)} rows/s, rollups maintained (${database.handle.kind}); ` +
        `the table now holds ${tableRows} rows`,
    );
    for (const user of [probe, mid, large]) {
      const drift = await reconcileUser(db, user, 'UTC');
      if (drift.rows > 0) {
        throw new Error(`the bulk loader left ${drift.rows} rollup rows of ${user} wrong`);
      }
    }
    console.log('reconciliation found no drift in the loaded users’ rollups');

    const largeTable = await measure(base, probe);
    const midUser = await measure(base, mid);
    const largeUser = await measure(base, large);

    const rows = [];
    let worst = 0;
    for (const label of Object.keys(QUERIES) as (keyof typeof QUERIES)[]) {
      for (const [dimension, before, after] of [
        [`table 10^3 → ${tableRows.toExponential(1)} rows`, smallTable, largeTable],
        [`user ${MID_ROWS} → ${LARGE_ROWS} rows`, midUser, largeUser],
      ] as const) {
        const ratio = after[label].p50 / before[label].p50;
        worst = Math.max(worst, ratio);
        rows.push({
          query: label,
          growth: dimension,
          'p50 ms before': before[label].p50.toFixed(2),
          'p99 ms before': before[label].p99.toFixed(2),
          'p50 ms after': after[label].p50.toFixed(2),
          'p99 ms after': after[label].p99.toFixed(2),
          'ratio p50': ratio.toFixed(2),
        });
      }
    }
    console.table(rows);
    console.log(
      `worst p50 ratio ${worst.toFixed(2)} (target ≤ ${TARGET_RATIO}): ` +
        (worst <= TARGET_RATIO ? 'flat' : 'NOT flat'),
    );
  } finally {
    await app.close();
    await database.drop();
  }
}
