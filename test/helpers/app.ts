import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import { transactionBody } from './factories.js';
import { buildApp, type AppDeps } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { KeyRing } from '../../src/platform/crypto.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { createLogger, loggerOptions } from '../../src/platform/logging.js';
import { adminQuery, testDatabaseName, withDatabase } from './postgres-admin.js';

export { adminQuery, withDatabase };

/** Set by CI: the tests then run against a real PostgreSQL server instead of PGlite. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
/** Set by CI: the cache then lives in that Redis, under a prefix of the test's own. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;

export interface TestDatabase {
  handle: DatabaseHandle;
  /** The connection string of this test's own database (PostgreSQL only). */
  url: string | undefined;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database for one test file: an in-memory PGlite, or a new database on the
 * TEST_DATABASE_URL server that is dropped afterwards. Tests never share data.
 */
export async function createTestDatabase(
  options: { databaseUrl?: string | undefined; connectTimeoutMs?: number } = {},
): Promise<TestDatabase> {
  const logger = createLogger('silent');
  const common = {
    poolSize: 10,
    statementTimeoutMs: 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 2_000,
    logger,
  };
  // test/global-setup.ts migrated one database for the run; each file starts from a copy of it.
  // Migrating again is then a no-op that still proves the copy is current.
  if (!TEST_DATABASE_URL) {
    const dumpPath = inject('pgliteDumpPath');
    const pgliteDump = dumpPath ? new Blob([await readFile(dumpPath)]) : undefined;
    const handle = await openDatabase({ ...common, dataDir: 'memory://', pgliteDump });
    await handle.migrate();
    return { handle, url: undefined, drop: () => handle.close() };
  }
  const name = testDatabaseName('test');
  const template = inject('postgresTemplate');
  await adminQuery(`create database ${name}${template ? ` template ${template}` : ''}`);
  const url = withDatabase(TEST_DATABASE_URL, name);
  const handle = await openDatabase({
    ...common,
    dataDir: 'unused',
    databaseUrl: options.databaseUrl ?? url,
  });
  await handle.migrate();
  return {
    handle,
    url,
    async drop() {
      await handle.close();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

export function testKeyRing(id = 'test'): KeyRing {
  return { activeKeyId: id, keys: new Map([[id, randomBytes(32)]]) };
}

export function testConfig(env: Record<string, string> = {}): Config {
  // The scheduler and the worker run background work on a clock; tests that want them turn them on.
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: 'memory://',
    SCHEDULER: 'off',
    WORKER: 'off',
    // Tests send bursts from one address; the rate-limit tests turn it on.
    RATE_LIMIT_MAX: '0',
    RATE_LIMIT_IP_MAX: '0',
    // A test on a cluster of its own (REDIS_CLUSTER_NODES) does not also get the shared server.
    ...(TEST_REDIS_URL && !env.REDIS_CLUSTER_NODES
      ? { REDIS_URL: TEST_REDIS_URL, CACHE_PREFIX: `fido-test-${randomBytes(6).toString('hex')}` }
      : {}),
    ...env,
  });
}

/** The app as a user meets it, on the given database, driven through `inject()`. */
export async function buildTestApp(
  database: TestDatabase,
  options: { env?: Record<string, string>; deps?: AppDeps } = {},
): Promise<FastifyInstance> {
  return buildApp(testConfig(options.env), {
    database: database.handle,
    keyRing: testKeyRing(),
    ...options.deps,
  });
}

export interface TestContext {
  app: FastifyInstance;
  database: TestDatabase;
}

/**
 * Registers the file's setup and tear-down: a fresh database and the app on it before the tests,
 * both gone after. Read `app` and `database` inside tests, not at module load.
 */
export function useTestApp(options: Parameters<typeof buildTestApp>[1] = {}): TestContext {
  const context = {} as TestContext;
  beforeAll(async () => {
    context.database = await createTestDatabase();
    context.app = await buildTestApp(context.database, options);
  });
  afterAll(async () => {
    await context.app?.close();
    await context.database?.drop();
  });
  return context;
}

/** A transaction as the API answers it (the fields tests look at). */
export interface TransactionData {
  id: string;
  user_id: string;
  full_name: string;
  transaction_date: string;
  transaction_amount: number;
  version: number;
  [field: string]: unknown;
}

/** Creates a transaction through the API, as a client would, and returns what it answered. */
export async function postTransaction(
  app: FastifyInstance,
  overrides: Record<string, unknown> = {},
): Promise<TransactionData> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody(overrides),
  });
  if (response.statusCode !== 201) {
    throw new Error(`create answered ${response.statusCode}: ${response.body}`);
  }
  return response.json<{ data: TransactionData }>().data;
}

/** A logger at `level` (with the app's options) writing to memory: `lines` holds every line. */
export function captureLogs(level: string): { logger: FastifyBaseLogger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino(loggerOptions(level), sink), lines };
}
