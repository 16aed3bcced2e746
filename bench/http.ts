import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../src/platform/db.js';
import { createLogger } from '../src/platform/logging.js';

/** A fresh database for one scenario: on BENCH_DATABASE_URL's server, or in-memory PGlite. */
export async function openBenchDatabase(): Promise<{
  handle: DatabaseHandle;
  drop(): Promise<void>;
}> {
  const logger = createLogger('silent');
  const common = { poolSize: 10, statementTimeoutMs: 600_000, connectTimeoutMs: 5_000, logger };
  const serverUrl = process.env.BENCH_DATABASE_URL;
  if (!serverUrl) {
    const handle = await openDatabase({ ...common, dataDir: 'memory://' });
    await handle.migrate();
    return { handle, drop: () => handle.close() };
  }
  const name = `fido_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ ...common, dataDir: 'unused', databaseUrl: url.toString() });
  await handle.migrate();
  return {
    handle,
    async drop() {
      await handle.close();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
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
  errors: number;
}

/** A bounded load: `connections` clients for `seconds` seconds, loopback only. */
export async function load(
  url: string,
  options: { seconds?: number; connections?: number } = {},
): Promise<LoadResult> {
  const result = await autocannon({
    url,
    connections: options.connections ?? 50,
    duration: options.seconds ?? Number(process.env.BENCH_SECONDS ?? 5),
  });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}
