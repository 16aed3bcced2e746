/**
 * What the cache buys: history's first page and all-time analytics under load, with the cache,
 * without it, and with Redis down (every cache call fails fast and the database answers).
 *
 *   npm run bench -- --scenario cache           (in-process cache, embedded PGlite)
 *   BENCH_DATABASE_URL=… BENCH_REDIS_URL=redis://127.0.0.1:6379 npm run bench -- --scenario cache
 */
import { randomBytes } from 'node:crypto';
import { buildApp } from '../src/app.js';
import { memoryStore, redisStore, type CacheStore } from '../src/platform/cache.js';
import { FieldCipher } from '../src/platform/crypto.js';
import { createLogger } from '../src/platform/logging.js';
import { inProcessConfig, listen, load, openBenchDatabase, uncachedStore } from './http.js';
import { seedUser } from './seed.js';

const ROWS = 1_000;

export async function cacheScenario(): Promise<void> {
  const database = await openBenchDatabase();
  const keyRing = { activeKeyId: 'bench', keys: new Map([['bench', randomBytes(32)]]) };
  const redisUrl = process.env.BENCH_REDIS_URL;
  const prefix = `fido-bench-${randomBytes(4).toString('hex')}`;
  const logger = createLogger('silent');
  try {
    await seedUser(database.handle.db, new FieldCipher(keyRing), {
      userId: 'bench-user',
      count: ROWS,
      days: 365,
      end: new Date('2026-06-30T12:00:00Z'),
    });
    const variants: [string, CacheStore][] = [
      [
        redisUrl ? 'cached (redis)' : 'cached (in-process)',
        redisUrl
          ? redisStore({ url: redisUrl, prefix, timeoutMs: 100, logger })
          : memoryStore(10_000),
      ],
      ['uncached', uncachedStore()],
      // Port 1 refuses connections: Redis is down for the whole run.
      [
        'redis down (degraded)',
        redisStore({ url: 'redis://127.0.0.1:1', prefix, timeoutMs: 100, logger }),
      ],
    ];
    const rows: Record<string, string | number>[] = [];
    const baseline: Record<string, number> = {};
    for (const [label, cacheStore] of variants) {
      const config = inProcessConfig();
      const app = await buildApp(config, { database: database.handle, keyRing, cacheStore });
      const base = await listen(app);
      for (const [route, path] of [
        ['history page 1', '/api/v1/transaction/history/bench-user'],
        ['analytics all-time', '/api/v1/analytics/bench-user'],
      ] as const) {
        const result = await load(`${base}${path}`);
        if (label === 'uncached') baseline[route] = result.requestsPerSecond;
        rows.push({
          variant: label,
          route,
          'req/s': Math.round(result.requestsPerSecond),
          'p50 ms': result.p50Ms,
          'p99 ms': result.p99Ms,
          errors: result.errors,
        });
      }
      await app.close();
    }
    for (const row of rows) {
      const uncached = baseline[String(row.route)];
      row['× uncached'] = uncached ? (Number(row['req/s']) / uncached).toFixed(2) : '';
    }
    console.table(rows);
  } finally {
    await database.drop();
  }
}
