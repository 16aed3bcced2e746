/**
 * The API benchmark suite: the production bundle (dist/) in a child process, on PostgreSQL and
 * Redis when BENCH_DATABASE_URL / BENCH_REDIS_URL are set and on the embedded defaults otherwise,
 * with request logging at the production level (LOG_LEVEL=info, one line per request, to a file).
 * A bare Fastify hello world, started in the same run, is the ceiling every scenario is compared
 * with; on PostgreSQL, pgbench's INSERT rate is the database's ceiling for the create routes.
 *
 *   npm run bench                                  all of it, embedded PGlite + in-process cache
 *   npm run bench -- --scenario read-by-id         one scenario (plus the ceiling)
 *   BENCH_DATABASE_URL=postgres://…@127.0.0.1:5432/postgres BENCH_REDIS_URL=redis://127.0.0.1:6379 npm run bench
 *
 * Scaling: on PostgreSQL and Redis, a few `api` scenarios run again on `api-2`, the API with
 * WEB_CONCURRENCY=2 (a supervisor and two HTTP processes on one port), as `<name>-2-processes`;
 * `× 1 process` is their req/s over the same scenario's on `api` in the same run. Naming only a
 * `-2-processes` scenario runs its 1-process counterpart too, so that the ratio is always there.
 * On PGlite (or without BENCH_REDIS_URL) the API cannot run several processes, so they are
 * skipped with a note, as pgbench is; if nothing else was named, nothing runs. Their RSS and CPU
 * are the whole server's (supervisor plus children, summed); cache and event-loop figures come
 * from each HTTP process's /metrics (hits and errors summed, loop p99 the highest).
 *
 * Knobs: BENCH_SECONDS (5) and BENCH_WARMUP_SECONDS (1) per scenario, BENCH_CONNECTIONS (50),
 * BENCH_DEEP_PAGES (1000: the history user gets that many pages of 100, plus one), BENCH_POOL_USERS
 * (50) × BENCH_POOL_ROWS (20) for reads by id and the mixed workload, BENCH_WEBHOOK_DELIVERIES
 * (5,000) and BENCH_WEBHOOK_WARMUP (500) for webhook-delivery, BENCH_SKIP_BUILD=1,
 * BENCH_NODE_OPTIONS (NODE_OPTIONS for the API processes, e.g. --max-old-space-size=160),
 * BENCH_HEAP_GROWING_PERCENT (HEAP_GROWING_PERCENT for the API processes),
 * BENCH_KEEP=1 (keep the work directory: server logs, pgbench logs) and BENCH_CPU_PROF=1 (the API
 * processes write V8 CPU profiles there; open them in Chrome DevTools).
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type autocannon from 'autocannon';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { createApiKeysService } from '../src/modules/api-keys/index.js';
import { encodeCursor } from '../src/modules/transactions/index.js';
import { FieldCipher, parseKeyRing } from '../src/platform/crypto.js';
import { queryRows } from '../src/db/client.js';
import { drainWorker, measureWebhookDelivery, startReceiver } from './event-worker.js';
import { load, openBenchDatabase, type LoadResult } from './http.js';
import { PGBENCH_SCRIPTS, pgbenchPath, runPgbench } from './pgbench.js';
import {
  envNumber,
  HELLO_WORLD_SOURCE,
  processTree,
  readTreeCpuMs,
  sampleRss,
  socketOwner,
  startServer,
  type ServerProcess,
} from './processes.js';
import { report, unmeasured, type ResultsFile, type ScenarioResult } from './results.js';
import { analyzeTables, seedUser } from './seed.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PAGE_SIZE = 100;
const SEED_END = new Date('2026-06-30T12:00:00Z');
const RANGE_QUERY = 'start_date=2025-07-01T08:30:00Z&end_date=2026-06-30T17:45:00Z';

const SETTINGS = {
  seconds: envNumber('BENCH_SECONDS', 5),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 1),
  connections: envNumber('BENCH_CONNECTIONS', 50),
  deepPages: Math.max(2, envNumber('BENCH_DEEP_PAGES', 1000)),
  poolUsers: Math.max(1, envNumber('BENCH_POOL_USERS', 50)),
  poolRows: Math.max(1, envNumber('BENCH_POOL_ROWS', 20)),
  /** `webhook-delivery`: creates (so deliveries) measured, after this many to warm up. */
  webhookDeliveries: Math.max(1, envNumber('BENCH_WEBHOOK_DELIVERIES', 5_000)),
  webhookWarmup: envNumber('BENCH_WEBHOOK_WARMUP', 500),
  /** The API's DB_POOL_SIZE default: pgbench gets the same number of connections. */
  dbPoolSize: 10,
};

/** HTTP processes of the `api-2` target (WEB_CONCURRENCY). */
const CLUSTER_PROCESSES = 2;
/** How long `api-default` scenarios wait for the worker to catch up after the load. */
const DRAIN_LIMIT_MS = 180_000;

/** Servers under test. */
type Target = 'hello' | 'api' | 'api-nocache' | 'api-2' | 'api-default' | 'worker';

const TARGET_NOTES: Record<Target, string> = {
  hello: 'bare Fastify hello world, no logging (the ceiling)',
  api: 'node dist/server.js, production settings, its read cache on',
  'api-nocache':
    'node dist/server.js with its cache unreachable (REDIS_URL=redis://127.0.0.1:1, refused): ' +
    'every read is computed by the database; the failed cache call fails fast',
  'api-default':
    'node dist/server.js as `npm start` runs it in production: the event worker inline and the ' +
    'scheduler on, default handlers and logging (only the rate limit is raised, as on api); ' +
    "its CPU per request counts the worker's catch-up after the load",
  worker:
    'node dist/worker.js (the event worker in its own process, scheduler off) beside the API ' +
    '(WORKER=off), both with WEBHOOK_ALLOW_PRIVATE_TARGETS=true so that a webhook may point at ' +
    "the bench's receiver on 127.0.0.1; PostgreSQL only",
  'api-2':
    `node dist/server.js with WEB_CONCURRENCY=${CLUSTER_PROCESSES}: a supervisor and ` +
    `${CLUSTER_PROCESSES} HTTP processes sharing one port (Node cluster), otherwise as api; ` +
    'PostgreSQL and Redis only',
};

interface Req {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

interface Fixtures {
  runId: string;
  deepUser: string;
  deepCursor: string;
  poolUsers: string[];
  readIds: string[];
}

interface Scenario {
  name: string;
  target: Target;
  description: string;
  needs: ('deep' | 'pool')[];
  /** Each connection sends these in turn, over and over; each call makes the next request. */
  requests(f: Fixtures): (() => Req)[];
  /** Checks a probe response's body beyond its 2xx status. */
  check?(body: unknown): string | undefined;
  /** Compared with the database ceiling (pgbench) too. */
  create?: boolean;
  /** On `api-2`: the `api` scenario it repeats, whose req/s it is compared with. */
  oneProcess?: string;
  /**
   * On `api-default`: after the load, wait until the event worker has caught up (its backlog in
   * /metrics is zero) and count the server's CPU until then.
   */
  drain?: boolean;
  /** The API-only (`WORKER=off`) scenario it is compared with: req/s and CPU per request. */
  apiOnly?: string;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const JSON_HEADERS = { 'content-type': 'application/json' };
/** The bench's API key (production requires one), added to every request once created. */
const AUTH_HEADERS: Record<string, string> = {};

function createBody(userId: string): string {
  return JSON.stringify({
    user_id: userId,
    full_name: 'Ama Owusu',
    transaction_amount: '100.50',
    transaction_type: 'credit',
    currency: 'GHS',
    description: 'Salary',
    metadata: { source: 'bench' },
  });
}

let counter = 0;
const next = () => (counter += 1);

const get = (p: string) => (): Req => ({ method: 'GET', path: p });
const history = (user: string, query = '') =>
  `/api/v1/transaction/history/${encodeURIComponent(user)}${query}`;
const analytics = (user: string) => `/api/v1/analytics/${encodeURIComponent(user)}`;

const ONE_PROCESS_SCENARIOS: Scenario[] = [
  {
    name: 'ceiling-hello-world',
    target: 'hello',
    description: 'GET / on a bare Fastify server',
    needs: [],
    requests: () => [get('/')],
  },
  {
    name: 'history-first-page-uncached',
    target: 'api-nocache',
    description: 'GET history, first page of 100 (the user has ~100,000 rows)',
    needs: ['deep'],
    requests: (f) => [get(history(f.deepUser))],
  },
  {
    name: 'history-page-1000-uncached',
    target: 'api-nocache',
    description: 'GET history with the cursor of page 1,000 (rows 99,901–100,000)',
    needs: ['deep'],
    requests: (f) => [get(history(f.deepUser, `?cursor=${f.deepCursor}`))],
    check(body) {
      const page = body as { data: unknown[]; pagination: { has_more: boolean } };
      return page.data.length === PAGE_SIZE && page.pagination.has_more
        ? undefined
        : `expected a full page with more after it, got ${page.data.length} rows`;
    },
  },
  {
    name: 'analytics-all-time-uncached',
    target: 'api-nocache',
    description: 'GET all-time analytics of the ~100,000-row user',
    needs: ['deep'],
    requests: (f) => [get(analytics(f.deepUser))],
  },
  {
    name: 'analytics-one-year-range-uncached',
    target: 'api-nocache',
    description: 'GET range analytics, one year with partial edge days',
    needs: ['deep'],
    requests: (f) => [
      get(`/api/v1/analytics/range/${encodeURIComponent(f.deepUser)}?${RANGE_QUERY}`),
    ],
  },
  {
    name: 'history-first-page-cached',
    target: 'api',
    description: 'GET history, first page of 100, same URL (cache hits)',
    needs: ['deep'],
    requests: (f) => [get(history(f.deepUser))],
  },
  {
    name: 'analytics-all-time-cached',
    target: 'api',
    description: 'GET all-time analytics, same URL (cache hits)',
    needs: ['deep'],
    requests: (f) => [get(analytics(f.deepUser))],
  },
  {
    name: 'read-by-id',
    target: 'api',
    description: 'GET one transaction, a random one of 1,000 ids per request (not cached)',
    needs: ['pool'],
    requests: (f) => [() => ({ method: 'GET', path: `/api/v1/transaction/${pick(f.readIds)}` })],
  },
  {
    name: 'create-unique-users',
    target: 'api',
    description: 'POST a transaction, a new user per request',
    needs: [],
    create: true,
    requests: (f) => [
      () => ({
        method: 'POST',
        path: '/api/v1/transaction/',
        headers: JSON_HEADERS,
        body: createBody(`bench-new-${f.runId}-${next()}`),
      }),
    ],
  },
  {
    name: 'read-by-id-default',
    target: 'api-default',
    description: 'GET one transaction, a random one of 1,000 ids, on the default configuration',
    needs: ['pool'],
    drain: true,
    apiOnly: 'read-by-id',
    requests: (f) => [() => ({ method: 'GET', path: `/api/v1/transaction/${pick(f.readIds)}` })],
  },
  {
    name: 'create-default',
    target: 'api-default',
    description:
      'POST a transaction, a new user per request, on the default configuration; CPU includes ' +
      "the worker's catch-up after the load",
    needs: [],
    create: true,
    drain: true,
    apiOnly: 'create-unique-users',
    requests: (f) => [
      () => ({
        method: 'POST',
        path: '/api/v1/transaction/',
        headers: JSON_HEADERS,
        body: createBody(`bench-default-${f.runId}-${next()}`),
      }),
    ],
  },
  {
    name: 'webhook-delivery',
    target: 'worker',
    description:
      'the worker delivers one webhook per create (a receiver on 127.0.0.1 registered through ' +
      "the API); req/s: deliveries/s; p50/p99: event to receipt; CPU: the worker's per delivery",
    needs: [],
    requests: (f) => [
      () => ({
        method: 'POST',
        path: '/api/v1/transaction/',
        headers: JSON_HEADERS,
        body: createBody(`bench-hook-${f.runId}-${next()}`),
      }),
    ],
  },
  {
    name: 'create-hot-user',
    target: 'api',
    description: 'POST a transaction, every request for the same user',
    needs: [],
    create: true,
    requests: (f) => [
      () => ({
        method: 'POST',
        path: '/api/v1/transaction/',
        headers: JSON_HEADERS,
        body: createBody(`bench-hot-${f.runId}`),
      }),
    ],
  },
  {
    name: 'create-idempotency-key',
    target: 'api',
    description: 'POST a transaction with a new Idempotency-Key, a new user per request',
    needs: [],
    create: true,
    requests: (f) => [
      () => {
        const n = next();
        return {
          method: 'POST',
          path: '/api/v1/transaction/',
          headers: { ...JSON_HEADERS, 'idempotency-key': `bench-${f.runId}-${n}` },
          body: createBody(`bench-idem-${f.runId}-${n}`),
        };
      },
    ],
  },
  {
    name: 'mixed-80-read-20-write',
    target: 'api',
    description:
      'per connection, in turn: GET by id, GET history page 1, GET analytics, GET by id, ' +
      'POST create; random users of the pool (each create invalidates that user’s cached reads)',
    needs: ['pool'],
    requests: (f) => [
      () => ({ method: 'GET', path: `/api/v1/transaction/${pick(f.readIds)}` }),
      () => ({ method: 'GET', path: history(pick(f.poolUsers)) }),
      () => ({ method: 'GET', path: analytics(pick(f.poolUsers)) }),
      () => ({ method: 'GET', path: `/api/v1/transaction/${pick(f.readIds)}` }),
      () => ({
        method: 'POST',
        path: '/api/v1/transaction/',
        headers: JSON_HEADERS,
        body: createBody(pick(f.poolUsers)),
      }),
    ],
  },
];

/** `api` scenarios repeated on `api-2`, as `<name>-2-processes`. */
const SCALED = ['read-by-id', 'analytics-all-time-cached', 'create-unique-users'];

export const SCENARIOS: Scenario[] = [
  ...ONE_PROCESS_SCENARIOS,
  ...SCALED.map((name): Scenario => {
    const base = ONE_PROCESS_SCENARIOS.find((s) => s.name === name && s.target === 'api');
    if (!base) throw new Error(`no api scenario named ${name} to run on several processes`);
    return {
      ...base,
      name: `${name}-${CLUSTER_PROCESSES}-processes`,
      target: 'api-2',
      description: `${base.description}; ${CLUSTER_PROCESSES} HTTP processes`,
      oneProcess: name,
    };
  }),
];

export const SCENARIO_NAMES = SCENARIOS.map((s) => s.name);

function toAutocannon(makers: (() => Req)[]): autocannon.Request[] {
  return makers.map((make) => ({
    setupRequest(request: autocannon.Request) {
      const made = make();
      return {
        ...request,
        method: made.method,
        path: made.path,
        headers: { ...request.headers, ...AUTH_HEADERS, ...made.headers },
        body: made.body ?? '',
      };
    },
  }));
}

/** One request of each kind before the load: a broken scenario fails here, not as a table of errors. */
async function probe(base: string, scenario: Scenario, fixtures: Fixtures): Promise<void> {
  for (const make of scenario.requests(fixtures)) {
    const req = make();
    const response = await fetch(`${base}${req.path}`, {
      method: req.method,
      headers: { ...AUTH_HEADERS, ...req.headers },
      ...(req.body ? { body: req.body } : {}),
    });
    const text = await response.text();
    if (response.status < 200 || response.status > 299) {
      throw new Error(
        `${scenario.name}: ${req.method} ${req.path} answered ${response.status}: ${text}`,
      );
    }
    const problem = scenario.check?.(JSON.parse(text));
    if (problem) throw new Error(`${scenario.name}: ${problem}`);
  }
}

interface ApiCounters {
  hits: number;
  misses: number;
  /** Cache operations that failed (timed out, refused): the database answered instead. */
  cacheErrors: number;
  /** Event-loop delay p99 since the previous scrape (prom-client resets it on each). */
  eventLoopP99Ms: number;
}

/** Counters from the API's own /metrics. */
function parseCounters(text: string): ApiCounters {
  const sum = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce(
      (total, match) => total + Number(match[1]),
      0,
    );
  return {
    hits: sum('fido_cache_hits_total'),
    misses: sum('fido_cache_misses_total'),
    cacheErrors: sum('fido_cache_errors_total'),
    eventLoopP99Ms: sum('fido_nodejs_eventloop_lag_p99_seconds') * 1000,
  };
}

/** GET /metrics on a connection of its own, and which of `pids` answered it. */
async function scrapeMetrics(
  base: string,
  pids: number[],
): Promise<{ pid: number | undefined; text: string }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const serverPort = Number(new URL(base).port);
  try {
    return await new Promise((resolve, reject) => {
      const request = http.get(`${base}/metrics`, { agent }, (response) => {
        const clientPort = response.socket.localPort;
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('error', reject);
        // Kept alive, the connection is still open: its server side belongs to one process.
        response.on('end', () =>
          resolve({
            pid: clientPort === undefined ? undefined : socketOwner(serverPort, clientPort, pids),
            text,
          }),
        );
      });
      request.on('error', reject);
    });
  } finally {
    agent.destroy();
  }
}

/**
 * The server's counters, summed over its HTTP processes (the event-loop p99: the highest), with the
 * pids they come from. /metrics is per process and a cluster's processes share the port, so each
 * scrape opens a connection of its own (the supervisor deals them out in turn) until every HTTP
 * process has answered once; undefined if some never did.
 */
async function serverCounters(
  server: ServerProcess,
): Promise<{ counters: ApiCounters; pids: string } | undefined> {
  if (server.httpProcesses === 1) {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return { counters: parseCounters(text), pids: String(server.pid) };
  }
  const pids = processTree(server.pid).filter((pid) => pid !== server.pid);
  const seen = new Map<number, ApiCounters>();
  for (let attempt = 0; attempt < 8 * pids.length && seen.size < pids.length; attempt += 1) {
    const { pid, text } = await scrapeMetrics(server.url, pids);
    // Only the first answer of each: a scrape resets the event-loop histogram it reports.
    if (pid !== undefined && !seen.has(pid)) seen.set(pid, parseCounters(text));
  }
  if (seen.size !== server.httpProcesses || seen.size !== pids.length) return undefined;
  const all = [...seen.values()];
  const total = (key: keyof ApiCounters) => all.reduce((sum, c) => sum + c[key], 0);
  return {
    counters: {
      hits: total('hits'),
      misses: total('misses'),
      cacheErrors: total('cacheErrors'),
      eventLoopP99Ms: Math.max(...all.map((c) => c.eventLoopP99Ms)),
    },
    pids: [...seen.keys()].sort((a, b) => a - b).join(','),
  };
}

async function measure(
  server: ServerProcess,
  scenario: Scenario,
  fixtures: Fixtures,
): Promise<ScenarioResult> {
  await probe(server.url, scenario, fixtures);
  // Before the warm-up too: relaying what earlier scenarios left (thousands of events from the
  // API-only creates) during the warm-up would leave the process less warm than its counterpart.
  if (scenario.drain) await drainWorker(server.url, AUTH_HEADERS, DRAIN_LIMIT_MS);
  const options = { connections: SETTINGS.connections };
  if (SETTINGS.warmupSeconds > 0) {
    await load(server.url, {
      ...options,
      seconds: SETTINGS.warmupSeconds,
      requests: toAutocannon(scenario.requests(fixtures)),
    });
  }
  // Work left by the warm-up (or by earlier scenarios) is not this load's: done before counting.
  if (scenario.drain) await drainWorker(server.url, AUTH_HEADERS, DRAIN_LIMIT_MS);
  const isApi = scenario.target !== 'hello';
  const countersBefore = isApi ? await serverCounters(server) : undefined;
  const rss = sampleRss(server.pid);
  const cpuBefore = readTreeCpuMs(server.pid);
  const wallBefore = performance.now();
  let result: LoadResult;
  let rssMaxMb: number | undefined;
  let drained: { backlogAtEnd: number; ms: number } | undefined;
  try {
    result = await load(server.url, {
      ...options,
      seconds: SETTINGS.seconds,
      requests: toAutocannon(scenario.requests(fixtures)),
    });
    if (scenario.drain) drained = await drainWorker(server.url, AUTH_HEADERS, DRAIN_LIMIT_MS);
  } finally {
    rssMaxMb = rss.stop();
  }
  const cpuAfter = readTreeCpuMs(server.pid);
  // Over the same processes only: one that exited (or was replaced) would skew the difference.
  const cpuMs =
    cpuBefore !== undefined && cpuAfter !== undefined && cpuBefore.pids === cpuAfter.pids
      ? cpuAfter.ms - cpuBefore.ms
      : undefined;
  const wallMs = performance.now() - wallBefore;
  const countersAfter = isApi ? await serverCounters(server) : undefined;
  const sameProcesses = countersBefore?.pids === countersAfter?.pids;
  if (isApi && (!countersBefore || !sameProcesses)) {
    console.warn(`  ${scenario.name}: /metrics not read from every HTTP process before and after`);
  }
  const before = sameProcesses ? countersBefore?.counters : undefined;
  const after = sameProcesses ? countersAfter?.counters : undefined;
  const lookups = before && after ? after.hits + after.misses - before.hits - before.misses : 0;
  const row: ScenarioResult = {
    name: scenario.name,
    kind: 'http',
    target: scenario.target,
    description: scenario.description,
    requestsPerSecond: result.requestsPerSecond,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    errors: result.errors,
    statusCodes: result.statusCodes,
    rssMaxMb: rssMaxMb ?? null,
    serverCpuPercent: cpuMs === undefined ? null : (cpuMs / wallMs) * 100,
    serverCpuMsPerRequest:
      cpuMs === undefined || result.responses === 0 ? null : cpuMs / result.responses,
    cacheHitRatio: before && after && lookups > 0 ? (after.hits - before.hits) / lookups : null,
    cacheErrors: before && after ? after.cacheErrors - before.cacheErrors : null,
    eventLoopP99Ms: after ? after.eventLoopP99Ms : null,
    ratioToCeiling: null,
    ratioToDbCeiling: null,
    ratioToOneProcess: null,
    ...(drained ? { workerBacklogAtEnd: drained.backlogAtEnd, drainMs: drained.ms } : {}),
  };
  console.log(
    `  ${scenario.name.padEnd(36)} ${Math.round(row.requestsPerSecond).toString().padStart(7)} req/s` +
      `  p99 ${row.p99Ms} ms  errors ${row.errors}` +
      (drained
        ? `  worker backlog at the end ${drained.backlogAtEnd}, caught up in ${Math.round(drained.ms)} ms`
        : ''),
  );
  return row;
}

function git(args: string[]): string | null {
  const out = spawnSync('git', ['--no-optional-locks', ...args], { cwd: ROOT, encoding: 'utf8' });
  return out.status === 0 ? out.stdout.trim() : null;
}

function build(): void {
  if (process.env.BENCH_SKIP_BUILD === '1') {
    console.log('build skipped (BENCH_SKIP_BUILD=1): dist/ as it is');
    return;
  }
  const started = Date.now();
  const out = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (out.status !== 0) {
    throw new Error(`npm run build failed:\n${out.stdout}\n${out.stderr}`);
  }
  console.log(`built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Deletes what the run left in Redis: only keys under this run's own prefix. */
async function cleanRedis(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [nextCursor, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

export async function runSuite(selected: readonly string[] | undefined): Promise<void> {
  const databaseUrl = process.env.BENCH_DATABASE_URL;
  const redisUrl = process.env.BENCH_REDIS_URL;
  const notes: string[] = [];
  // WEB_CONCURRENCY > 1 needs DATABASE_URL and REDIS_URL: the processes share no memory.
  const clusterPossible = Boolean(databaseUrl && redisUrl);
  const wanted = selected ? new Set(selected) : undefined;
  const scaled = SCENARIOS.filter((s) => s.oneProcess && (!wanted || wanted.has(s.name)));
  if (wanted && clusterPossible) {
    for (const s of scaled) {
      if (wanted.has(s.oneProcess!)) continue;
      wanted.add(s.oneProcess!);
      console.log(`${s.name}: running ${s.oneProcess} too, its 1-process counterpart`);
    }
  }
  for (const s of SCENARIOS.filter((s) => s.apiOnly && wanted?.has(s.name))) {
    if (wanted!.has(s.apiOnly!)) continue;
    wanted!.add(s.apiOnly!);
    console.log(`${s.name}: running ${s.apiOnly} too, its API-only counterpart`);
  }
  if (scaled.length > 0 && !clusterPossible) {
    const note =
      `api-2: skipped ${scaled.map((s) => s.name).join(', ')} ` +
      `(WEB_CONCURRENCY=${CLUSTER_PROCESSES} needs PostgreSQL and Redis: ` +
      `set BENCH_DATABASE_URL and BENCH_REDIS_URL${databaseUrl ? '' : '; embedded PGlite opens its data in one process only'})`;
    notes.push(note);
    console.log(note);
  }
  const scenarios = SCENARIOS.filter(
    (s) =>
      (s.target === 'hello' || !wanted || wanted.has(s.name)) &&
      (s.target !== 'api-2' || clusterPossible),
  );
  if (wanted && !scenarios.some((s) => s.target !== 'hello')) {
    console.log('nothing else was named: no run, no results file');
    return;
  }
  for (const [name, value] of [
    ['BENCH_DATABASE_URL', databaseUrl],
    ['BENCH_REDIS_URL', redisUrl],
  ] as const) {
    if (value && new URL(value).hostname !== '127.0.0.1') {
      throw new Error(`${name} must point at 127.0.0.1 (benchmarks stay on this machine)`);
    }
  }
  const started = new Date();
  const loadAverage1m = os.loadavg()[0] ?? 0;
  build();

  const workDir = mkdtempSync(path.join(os.tmpdir(), 'fido-bench-'));
  const dataDir = path.join(workDir, 'data');
  mkdirSync(dataDir);
  const runId = randomBytes(4).toString('hex');
  const secretKey = randomBytes(32).toString('base64');
  const keyRing = parseKeyRing({ secretKey });
  if (!keyRing) throw new Error('no key ring');
  const cipher = new FieldCipher(keyRing);
  const cachePrefix = `fido-bench-${runId}`;

  const database = await openBenchDatabase({ dataDir });
  const servers: ServerProcess[] = [];
  const results: ScenarioResult[] = [];
  let databaseLabel: string = database.handle.kind;
  try {
    const db = database.handle.db;
    if (database.handle.kind === 'postgres') {
      const [row] = await queryRows<{ v: string }>(
        db,
        sql`select current_setting('server_version') as v`,
      );
      databaseLabel = `postgres ${row?.v ?? '?'}`;
    }

    // Seed through the database, with the key the server will use.
    const needs = new Set(scenarios.flatMap((s) => s.needs));
    const deepUser = `bench-deep-${runId}`;
    const poolUsers = Array.from(
      { length: SETTINGS.poolUsers },
      (_, i) => `bench-pool-${runId}-${i}`,
    );
    const deepRows = SETTINGS.deepPages * PAGE_SIZE + PAGE_SIZE;
    const seeding = Date.now();
    if (needs.has('deep')) {
      await seedUser(db, cipher, {
        userId: deepUser,
        count: deepRows,
        days: 730,
        end: SEED_END,
        analyze: false,
      });
    }
    if (needs.has('pool')) {
      for (const userId of poolUsers) {
        await seedUser(db, cipher, {
          userId,
          count: SETTINGS.poolRows,
          days: 365,
          end: SEED_END,
          analyze: false,
        });
      }
    }
    await analyzeTables(db);
    let deepCursor = '';
    if (needs.has('deep')) {
      // The last row of page (deepPages − 1): the cursor a client holds after walking that far.
      const [last] = await queryRows<{ ms: string | number; id: string }>(
        db,
        sql`select (extract(epoch from transaction_date) * 1000)::bigint::text as ms, id::text as id
          from transactions where user_id = ${deepUser}
          order by transaction_date desc, id desc
          offset ${(SETTINGS.deepPages - 1) * PAGE_SIZE - 1} limit 1`,
      );
      if (!last) throw new Error('the deep user has too few rows');
      deepCursor = encodeCursor({ transactionDate: new Date(Number(last.ms)), id: last.id });
    }
    const readIds = needs.has('pool')
      ? (
          await queryRows<{ id: string }>(
            db,
            sql`select id::text as id from transactions where user_id like ${`bench-pool-${runId}-%`}
              order by random() limit 1000`,
          )
        ).map((r) => r.id)
      : [];
    console.log(
      `seeded ${needs.has('deep') ? deepRows : 0} rows for one user and ` +
        `${needs.has('pool') ? SETTINGS.poolUsers * SETTINGS.poolRows : 0} for a pool of ` +
        `${needs.has('pool') ? SETTINGS.poolUsers : 0} users in ` +
        `${((Date.now() - seeding) / 1000).toFixed(1)} s (${databaseLabel})`,
    );
    const fixtures: Fixtures = { runId, deepUser, deepCursor, poolUsers, readIds };
    // Production needs a way to authenticate: a key made as the CLI makes one.
    const { key } = await createApiKeysService({ db }).create({ name: 'bench', scopes: ['admin'] });
    AUTH_HEADERS.authorization = `Bearer ${key}`;
    // PGlite allows one process per data directory: the server takes it over from here.
    if (database.handle.kind === 'pglite') await database.close();

    const apiEnv = (nocache: boolean): Record<string, string> => ({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      SECRET_KEY: secretKey,
      SCHEDULER: 'off',
      // The API's own figures: in production the worker is its own process (npm run worker).
      WORKER: 'off',
      // The limiter runs (its cost is measured) but never refuses the load.
      RATE_LIMIT_MAX: '1000000',
      DATA_DIR: dataDir,
      ...(database.url ? { DATABASE_URL: database.url } : {}),
      ...(nocache ? { REDIS_URL: 'redis://127.0.0.1:1' } : redisUrl ? { REDIS_URL: redisUrl } : {}),
      CACHE_PREFIX: cachePrefix,
      // e.g. a heap bound (--max-old-space-size=N) to see its effect on RSS and throughput.
      ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}),
      // e.g. HEAP_GROWING_PERCENT=0 (V8's own growing), to see the default's effect.
      ...(process.env.BENCH_HEAP_GROWING_PERCENT
        ? { HEAP_GROWING_PERCENT: process.env.BENCH_HEAP_GROWING_PERCENT }
        : {}),
    });

    const profilerArgs = (name: string) =>
      process.env.BENCH_CPU_PROF === '1'
        ? ['--cpu-prof', `--cpu-prof-dir=${path.join(workDir, `${name}-cpu`)}`]
        : [];
    const phases: Target[] = ['hello', 'api-nocache', 'api', 'api-default', 'worker', 'api-2'];
    for (const target of phases) {
      const batch = scenarios.filter((s) => s.target === target);
      if (batch.length === 0) continue;
      console.log(`\n${target}: ${TARGET_NOTES[target]}`);
      // The same Node options and profiler for the ceiling as for the API: its CPU per request is
      // what every API scenario's is divided by, so both must pay for the same instrumentation.
      const nodeArgs = profilerArgs(target);
      const nodeOptions: Record<string, string> = process.env.BENCH_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS }
        : {};
      if (target === 'worker') {
        if (!database.url) {
          const note = `worker: skipped ${batch.map((s) => s.name).join(', ')} (a worker process needs PostgreSQL: set BENCH_DATABASE_URL)`;
          notes.push(note);
          console.log(`  ${note}`);
          continue;
        }
        // Both may reach 127.0.0.1: the API to register the receiver, the worker to call it.
        const env = { ...apiEnv(false), WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };
        const receiver = await startReceiver();
        const pair: ServerProcess[] = [];
        try {
          const api = await startServer({
            name: 'api-webhooks',
            args: [...profilerArgs('api-webhooks'), path.join(ROOT, 'dist', 'server.js')],
            env,
            logFile: path.join(workDir, 'api-webhooks.log'),
            cwd: workDir,
          });
          servers.push(api);
          pair.push(api);
          const worker = await startServer({
            name: target,
            args: [...profilerArgs(target), path.join(ROOT, 'dist', 'worker.js')],
            env: { ...env, WORKER_PORT: '0' },
            logFile: path.join(workDir, `${target}.log`),
            cwd: workDir,
          });
          servers.push(worker);
          pair.push(worker);
          for (const scenario of batch) {
            results.push(
              await measureWebhookDelivery({
                name: scenario.name,
                description: scenario.description,
                api,
                worker,
                receiver,
                headers: AUTH_HEADERS,
                db,
                creates: () => toAutocannon(scenario.requests(fixtures)),
                deliveries: SETTINGS.webhookDeliveries,
                warmup: SETTINGS.webhookWarmup,
                connections: SETTINGS.connections,
                limitMs: DRAIN_LIMIT_MS,
              }),
            );
          }
        } finally {
          for (const server of pair) await server.stop();
          await receiver.close();
        }
        continue;
      }
      const server = await startServer(
        target === 'hello'
          ? {
              name: target,
              args: [...nodeArgs, '--input-type=module', '-e', HELLO_WORLD_SOURCE],
              env: {
                PATH: process.env.PATH ?? '/usr/bin:/bin',
                NODE_ENV: 'production',
                ...nodeOptions,
              },
              logFile: path.join(workDir, `${target}.log`),
              cwd: ROOT,
            }
          : {
              name: target,
              args: [...nodeArgs, path.join(ROOT, 'dist', 'server.js')],
              env: {
                ...apiEnv(target === 'api-nocache'),
                ...(target === 'api-2' ? { WEB_CONCURRENCY: String(CLUSTER_PROCESSES) } : {}),
                // npm start's defaults: the worker and the scheduler run in the API process.
                ...(target === 'api-default' ? { WORKER: 'inline', SCHEDULER: 'on' } : {}),
              },
              httpProcesses: target === 'api-2' ? CLUSTER_PROCESSES : 1,
              logFile: path.join(workDir, `${target}.log`),
              // Not the repository: the server must not pick up a developer's .env.
              cwd: workDir,
            },
      );
      servers.push(server);
      try {
        for (const scenario of batch) results.push(await measure(server, scenario, fixtures));
      } finally {
        await server.stop();
      }
    }

    // The database's own ceiling for the create routes, on the same database, after the API.
    const wantsCreate = scenarios.some((s) => s.create);
    if (wantsCreate && database.url) {
      const bin = pgbenchPath();
      if (!bin) {
        notes.push('pgbench: skipped (not installed; apt-get install postgresql-client)');
      } else {
        console.log(
          `\npgbench: ${SETTINGS.dbPoolSize} clients (the API's pool size), ${SETTINGS.seconds} s`,
        );
        for (const script of PGBENCH_SCRIPTS) {
          const run = await runPgbench({
            bin,
            url: database.url,
            workDir,
            ...script,
            seconds: SETTINGS.seconds,
            clients: SETTINGS.dbPoolSize,
          });
          console.log(
            `  ${run.name.padEnd(36)} ${Math.round(run.transactionsPerSecond).toString().padStart(7)} tx/s`,
          );
          results.push({
            name: run.name,
            kind: 'pgbench',
            target: 'postgres',
            description: run.description,
            requestsPerSecond: run.transactionsPerSecond,
            p50Ms: run.p50Ms,
            p99Ms: run.p99Ms,
            errors: run.failed,
            statusCodes: {},
            ...unmeasured(),
          });
        }
      }
    } else if (wantsCreate) {
      notes.push('pgbench: skipped (embedded PGlite: no PostgreSQL server to measure)');
    }
  } finally {
    for (const server of servers) await server.stop();
    await database.drop();
    if (redisUrl) await cleanRedis(redisUrl, cachePrefix).catch(() => undefined);
    if (process.env.BENCH_KEEP !== '1') rmSync(workDir, { recursive: true, force: true });
    else console.log(`kept ${workDir} (server logs, pgbench logs)`);
  }

  const helloWorld = results.find((r) => r.name === 'ceiling-hello-world');
  const ceiling = helloWorld?.requestsPerSecond;
  const ceilingCpu = helloWorld?.serverCpuMsPerRequest;
  const dbCeiling = results.find((r) => r.name === 'pgbench-single-insert')?.requestsPerSecond;
  for (const row of results) {
    // Deliveries per second are not requests served: no ratio for the worker's row.
    if (row.kind === 'http' && row.target !== 'worker' && ceiling) {
      row.ratioToCeiling = row.requestsPerSecond / ceiling;
    }
    if (row.kind === 'http' && ceilingCpu && row.serverCpuMsPerRequest !== null) {
      row.cpuRatioToCeiling = row.serverCpuMsPerRequest / ceilingCpu;
    }
    const scenario = SCENARIOS.find((s) => s.name === row.name);
    if (scenario?.create && dbCeiling) row.ratioToDbCeiling = row.requestsPerSecond / dbCeiling;
    const oneProcess = results.find((r) => r.name === scenario?.oneProcess)?.requestsPerSecond;
    if (oneProcess) row.ratioToOneProcess = row.requestsPerSecond / oneProcess;
    const helloCpu = results.find((r) => r.name === 'ceiling-hello-world')?.serverCpuMsPerRequest;
    if (row.kind === 'http' && helloCpu && row.serverCpuMsPerRequest !== null) {
      row.cpuRatioToCeiling = row.serverCpuMsPerRequest / helloCpu;
    }
    const apiOnly = results.find((r) => r.name === scenario?.apiOnly);
    if (apiOnly) {
      row.ratioToApiOnly = row.requestsPerSecond / apiOnly.requestsPerSecond;
      row.cpuRatioToApiOnly =
        row.serverCpuMsPerRequest && apiOnly.serverCpuMsPerRequest
          ? row.serverCpuMsPerRequest / apiOnly.serverCpuMsPerRequest
          : null;
    }
  }
  const cpus = os.cpus().length;
  const scalingNote =
    `× 1 process: a -${CLUSTER_PROCESSES}-processes scenario's req/s over the same scenario's on api ` +
    `(1 process) in this run. This machine has ${cpus} CPU${cpus === 1 ? '' : 's'}, shared by the server's ` +
    'processes with autocannon (in the bench process), PostgreSQL and Redis' +
    (cpus <= CLUSTER_PROCESSES
      ? `, so ${CLUSTER_PROCESSES} HTTP processes cannot reach ${CLUSTER_PROCESSES}× here: ` +
        'the ratio shows what a second process gains from the CPU left over, not the scaling ' +
        'with a core per process'
      : ': the ratio understates the scaling with a core per process');

  const file: ResultsFile = {
    date: started.toISOString(),
    commit: git(['rev-parse', 'HEAD']),
    srcModified: (git(['status', '--porcelain', '--untracked-files=no', '--', 'src']) ?? '') !== '',
    node: process.version,
    database: databaseLabel,
    databaseKind: databaseLabel.startsWith('postgres') ? 'postgres' : 'pglite',
    cache: redisUrl ? 'redis' : 'memory',
    machine: {
      cpus,
      cpuModel: os.cpus()[0]?.model ?? '?',
      memoryMb: Math.round(os.totalmem() / 2 ** 20),
      loadAverage1m,
    },
    settings: { ...SETTINGS, nodeOptions: process.env.BENCH_NODE_OPTIONS ?? '' },
    notes: [
      ...Object.entries(TARGET_NOTES).map(([target, note]) => `${target}: ${note}`),
      `load: autocannon in the bench process, ${SETTINGS.connections} connections, ` +
        `${SETTINGS.warmupSeconds} s warm-up then ${SETTINGS.seconds} s measured per scenario, ` +
        'on the same machine as the server (they share its CPUs)',
      'errors: connection errors, timeouts and non-2xx answers; RSS MB: the server process, highest sample (every 100 ms); ' +
        "CPU %: its CPU time over the load's wall time (100 = one core); CPU ms/req: that time per response; " +
        'for api-2 both are summed over the supervisor and its HTTP processes (each RSS counts the pages they share, ' +
        'so that sum is an upper bound)',
      'latencies: autocannon reports whole milliseconds',
      'cache hit / cache err: hits over lookups, and failed cache operations (each answered by the database), from ' +
        "the API's /metrics; loop p99: the API's event-loop delay p99 (ms) over the measured load; for api-2, " +
        'each HTTP process is scraped on a connection of its own: hits and errors summed, loop p99 the highest',
      "× ceiling: req/s over the hello world's; × hello CPU: CPU ms/req over the hello world's " +
        '(same Node options, and profiled too under BENCH_CPU_PROF=1); ' +
        '× pgbench: create req/s over pgbench-single-insert tx/s',
      ...(process.env.BENCH_CPU_PROF === '1'
        ? [
            'BENCH_CPU_PROF=1: every server ran under the V8 profiler, which adds CPU per request; ' +
              'compare its figures only with other profiled runs',
          ]
        : []),
      ...(scaled.length === 0 ? [] : [scalingNote]),
      ...notes,
    ],
    scenarios: results,
  };
  report(file, path.join(ROOT, 'bench', 'results'));
}
