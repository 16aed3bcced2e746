/**
 * Analytics cost must not grow with the number of transactions: one user with 100 rows, one with
 * 1,000,000, the same queries against both, latency compared as a ratio in the same run.
 *
 *   npm run bench -- --scenario analytics-scaling          (embedded PGlite)
 *   BENCH_DATABASE_URL=postgres://… npm run bench -- …      (a fresh database on that server)
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../src/app.js';
import { FieldCipher } from '../src/platform/crypto.js';
import { inProcessConfig, openBenchDatabase, uncachedStore } from './http.js';
import { seedUser } from './seed.js';

const SMALL = 100;
const LARGE = Number(process.env.BENCH_LARGE_ROWS ?? 1_000_000);
const DAYS = 730;
const REQUESTS = 300;
const WARMUP = 30;

interface Stats {
  p50: number;
  p99: number;
}

async function timeRequests(url: string): Promise<Stats> {
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + REQUESTS; i += 1) {
    const started = process.hrtime.bigint();
    const response = await fetch(url);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    if (i >= WARMUP) samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

export async function analyticsScaling(): Promise<void> {
  const database = await openBenchDatabase();
  const keyRing = { activeKeyId: 'bench', keys: new Map([['bench', randomBytes(32)]]) };
  const cipher = new FieldCipher(keyRing);
  const end = new Date('2026-06-30T12:00:00Z');
  try {
    const seeded = Date.now();
    await seedUser(database.handle.db, cipher, {
      userId: 'bench-small',
      count: SMALL,
      days: DAYS,
      end,
    });
    await seedUser(database.handle.db, cipher, {
      userId: 'bench-large',
      count: LARGE,
      days: DAYS,
      end,
    });
    console.log(
      `seeded ${SMALL} + ${LARGE} rows in ${((Date.now() - seeded) / 1000).toFixed(1)} s (${database.handle.kind})`,
    );

    const config = inProcessConfig();
    // The same URL is requested hundreds of times: with the read cache, every request after the
    // first would measure the cache, not the query whose scaling this is about.
    const app = await buildApp(config, {
      database: database.handle,
      keyRing,
      cacheStore: uncachedStore(),
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const base = `http://127.0.0.1:${port}/api/v1/analytics`;
    const range = 'start_date=2025-07-01T08:30:00Z&end_date=2026-06-30T17:45:00Z';
    const rows: Record<string, string | number>[] = [];
    for (const [label, path] of [
      ['all-time', (user: string) => `${base}/${user}`],
      ['one-year range', (user: string) => `${base}/range/${user}?${range}`],
    ] as const) {
      const small = await timeRequests(path('bench-small'));
      const large = await timeRequests(path('bench-large'));
      rows.push({
        query: label,
        'small p50 ms': small.p50.toFixed(2),
        'small p99 ms': small.p99.toFixed(2),
        'large p50 ms': large.p50.toFixed(2),
        'large p99 ms': large.p99.toFixed(2),
        'ratio p50 large/small': (large.p50 / small.p50).toFixed(2),
      });
    }
    console.table(rows);
    await app.close();
  } finally {
    await database.drop();
  }
}
