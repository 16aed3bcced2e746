import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config.js';
import { memoryStore, type CacheStore } from '../src/platform/cache.js';
import { openDatabase, type DatabaseHandle } from '../src/db/client.js';
import { createLogger } from '../src/platform/logging.js';

export interface BenchDatabase {
  handle: DatabaseHandle;
  /** The fresh database's connection string (PostgreSQL only). */
  url: string | undefined;
  /** Closes this process's connections, keeping the data (a server process takes over). */
  close(): Promise<void>;
  /** Closes, and drops the database on a PostgreSQL server. */
  drop(): Promise<void>;
}

/**
 * A fresh database for one scenario: on BENCH_DATABASE_URL's server, or PGlite (in memory, or in
 * `dataDir` when a server process is to open it after seeding).
 */
export async function openBenchDatabase(
  options: { dataDir?: string } = {},
): Promise<BenchDatabase> {
  const logger = createLogger('silent');
  const common = { poolSize: 10, statementTimeoutMs: 600_000, connectTimeoutMs: 5_000, logger };
  const serverUrl = process.env.BENCH_DATABASE_URL;
  let closed = false;
  if (!serverUrl) {
    const handle = await openDatabase({ ...common, dataDir: options.dataDir ?? 'memory://' });
    await handle.migrate();
    const close = async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    };
    return { handle, url: undefined, close, drop: close };
  }
  const name = `fido_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ ...common, dataDir: 'unused', databaseUrl: url.toString() });
  await handle.migrate();
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return {
    handle,
    url: url.toString(),
    close,
    async drop() {
      await close();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/** A cache that keeps nothing: every read is computed from the database. */
/**
 * Config for an app built inside the benchmark process: the route's own cost, without background
 * work (in production the worker is its own process) or the per-IP limit (one address sends the
 * whole load).
 */
export function inProcessConfig(): Config {
  return loadConfig({
    ...process.env,
    LOG_LEVEL: 'warn',
    SCHEDULER: 'off',
    WORKER: 'off',
    DATA_DIR: 'memory://',
    RATE_LIMIT_IP_MAX: '0',
  });
}

export function uncachedStore(): CacheStore {
  const inner = memoryStore(1);
  return { ...inner, kind: 'memory', async write() {} };
}

/** Listens on an ephemeral port of 127.0.0.1 and returns the base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Connection errors (timeouts included) and non-2xx answers. */
  errors: number;
  /** Responses received, whatever their status. */
  responses: number;
  /** Responses per status code. */
  statusCodes: Record<string, number>;
}

export interface LoadOptions {
  seconds?: number;
  /** Send this many requests in all, instead of loading for `seconds`. */
  amount?: number;
  connections?: number;
  /** Requests each connection sends in turn (see autocannon's `requests`, `setupRequest`). */
  requests?: autocannon.Request[];
}

/** Refuses anything but loopback: benchmarks never load another machine. */
function assertLoopback(url: string): void {
  const { hostname } = new URL(url);
  if (hostname !== '127.0.0.1') throw new Error(`bench targets 127.0.0.1 only, not ${hostname}`);
}

/** A bounded load: `connections` clients for `seconds` seconds (or `amount` requests), loopback only. */
export async function load(url: string, options: LoadOptions = {}): Promise<LoadResult> {
  assertLoopback(url);
  const result = await autocannon({
    url,
    connections: options.connections ?? 50,
    duration: options.seconds ?? Number(process.env.BENCH_SECONDS ?? 5),
    ...(options.amount !== undefined ? { amount: options.amount } : {}),
    ...(options.requests ? { requests: options.requests } : {}),
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
    statusCodes[code] = stats.count ?? 0;
  }
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    // autocannon's `errors` already counts timeouts.
    errors: result.errors + result.non2xx,
    responses: Object.values(statusCodes).reduce((sum, n) => sum + n, 0),
    statusCodes,
  };
}
