import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql, type SQL } from 'drizzle-orm';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import pg from 'pg';
import lockfile from 'proper-lockfile';
import type { FastifyBaseLogger } from 'fastify';
import * as schema from './schema/index.js';
import {
  CommitOutcomeUnknown,
  isDatabaseUnavailable,
  leavesOutcomeUnknown,
  StartupError,
} from '../platform/errors.js';

export type Schema = typeof schema;
/** A database handle or an open database transaction: repositories accept either. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type DbTx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;

export interface DatabaseHandle {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** Answers when the database can run a query; throws otherwise. */
  ping(): Promise<void>;
  /** Connection pool usage (PostgreSQL only). */
  poolStats(): { total: number; idle: number; waiting: number } | undefined;
  /** Applies the committed migrations; safe to run from several processes at once. */
  migrate(): Promise<void>;
  /** PGlite only: a dump of the data directory, which `pgliteDump` starts a new instance from. */
  dumpDataDir?(): Promise<Blob>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL connection string; without it, PGlite. */
  databaseUrl?: string | undefined;
  /** Where PGlite keeps its files; `memory://` keeps them in memory (tests). */
  dataDir: string;
  /**
   * PGlite only, in memory: start from this dump of a data directory (`dumpDataDir()`) instead of
   * an empty cluster. Tests load one migrated dump per run: initdb dominates a fresh instance.
   */
  pgliteDump?: Blob | undefined;
  poolSize: number;
  statementTimeoutMs: number;
  connectTimeoutMs: number;
  /**
   * PostgreSQL only: a request waiting on a database that answers nothing (a network black hole,
   * a hung server) gets its 503 within this many milliseconds. Default 3000.
   */
  hangTimeoutMs?: number | undefined;
  logger: FastifyBaseLogger;
}

export const DB_HANG_TIMEOUT_MS_DEFAULT = 3_000;

const MIGRATIONS_DIR = fileURLToPath(new URL('../../drizzle', import.meta.url));
// An arbitrary constant: the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK_ID = 7_201_553_001;

/** Another process (a running server, say) holds the embedded database's data directory. */
export class DataDirInUseError extends StartupError {
  override name = 'DataDirInUseError';
  constructor(
    readonly dataDir: string,
    options: { cause: unknown },
  ) {
    super(
      `DATA_DIR ${dataDir} is in use by another process of this service. ` +
        'The embedded database allows one process per directory: stop the other one, ' +
        'choose another DATA_DIR, or set DATABASE_URL to use PostgreSQL.',
      options,
    );
  }
}

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  return options.databaseUrl
    ? openPostgres({ ...options, databaseUrl: options.databaseUrl })
    : openPglite(options);
}

/** The connection each open PostgreSQL transaction runs on: `runStatement` uses it directly. */
const transactionClients = new WeakMap<DbTx, pg.PoolClient>();

function openPostgres(options: DatabaseOptions & { databaseUrl: string }): DatabaseHandle {
  const { logger } = options;
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.poolSize,
    connectionTimeoutMillis: options.connectTimeoutMs,
    // The server cancels a statement that runs too long; the client gives up a little later in
    // case the server itself is gone (a cut network never answers).
    statement_timeout: options.statementTimeoutMs,
    query_timeout: options.statementTimeoutMs + 1_000,
    idle_in_transaction_session_timeout: options.statementTimeoutMs * 2,
    idleTimeoutMillis: 30_000,
    application_name: 'fido-transactions-api',
  });
  // An idle client whose server goes away emits 'error'; unhandled, it would kill the process.
  // The pool discards the client, and the next checkout opens a fresh connection.
  pool.on('error', (error) => {
    logger.warn({ err: error }, 'database connection lost');
  });
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      logger.warn({ err: error }, 'database client error');
    });
  });
  const breaker = databaseBreaker(pool, {
    databaseUrl: options.databaseUrl,
    hangTimeoutMs: options.hangTimeoutMs ?? DB_HANG_TIMEOUT_MS_DEFAULT,
    logger,
  });
  const db = drizzlePg({ client: pool, schema, casing: 'snake_case' }) as unknown as Db;
  // drizzle-orm 0.45 runs BEGIN outside the try/finally that releases a pooled client
  // (drizzle-team/drizzle-orm#6241): a BEGIN on a connection that died while idle leaks it, and
  // after DB_POOL_SIZE such outages every request would wait forever. Check the client out here,
  // always give it back, and have the pool discard it when the database was the problem.
  // One drizzle instance per pooled connection, built on its first transaction: building one
  // walks the schema's relations, which cost more CPU than a short transaction's statements.
  const onClients = new WeakMap<pg.PoolClient, Db>();
  const transaction: Db['transaction'] = async (work, config) => {
    const client = await pool.connect();
    let broken: Error | undefined;
    // Set once the work is done: a failure after that is the COMMIT's.
    let committing = false;
    try {
      let onClient = onClients.get(client);
      if (!onClient) {
        onClient = drizzlePg({ client, schema, casing: 'snake_case' });
        onClients.set(client, onClient);
      }
      return await onClient.transaction(async (dbTx) => {
        transactionClients.set(dbTx, client);
        const result = await work(dbTx);
        committing = true;
        return result;
      }, config);
    } catch (error) {
      if (isDatabaseUnavailable(error)) broken = error as Error;
      // The COMMIT was sent and the connection failed: it may have been applied.
      if (committing && leavesOutcomeUnknown(error)) throw new CommitOutcomeUnknown(error);
      throw error;
    } finally {
      client.release(broken);
    }
  };
  Object.assign(db, { transaction });

  return {
    kind: 'postgres',
    db,
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async ping() {
      await pool.query('select 1');
    },
    async migrate() {
      const client = await pool.connect();
      try {
        await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
        try {
          await migratePg(drizzlePg({ client, schema }), { migrationsFolder: MIGRATIONS_DIR });
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
        }
      } finally {
        client.release();
      }
    },
    async close() {
      breaker.stop();
      await pool.end();
    },
  };
}

async function openPglite(options: DatabaseOptions): Promise<DatabaseHandle> {
  const inMemory = options.dataDir.startsWith('memory://');
  let releaseLock: (() => Promise<void>) | undefined;
  let dataPath = options.dataDir;
  if (!inMemory) {
    await mkdir(options.dataDir, { recursive: true });
    // Two processes on one PGlite directory silently lose writes: hold a lock for our lifetime.
    try {
      releaseLock = await lockfile.lock(options.dataDir, {
        lockfilePath: path.join(options.dataDir, 'pglite.lock'),
        stale: 10_000,
        retries: { retries: 6, minTimeout: 500, maxTimeout: 2_000 },
        onCompromised: (error) => options.logger.error({ err: error }, 'data directory lock lost'),
      });
    } catch (error) {
      throw new DataDirInUseError(options.dataDir, { cause: error });
    }
    dataPath = path.join(options.dataDir, 'pgdata');
  }
  const client = await PGlite.create(
    inMemory ? options.pgliteDump && { loadDataDir: options.pgliteDump } : { dataDir: dataPath },
  );
  const db = drizzlePglite({ client, schema, casing: 'snake_case' }) as unknown as Db;

  return {
    kind: 'pglite',
    db,
    poolStats: () => undefined,
    async ping() {
      await client.query('select 1');
    },
    async migrate() {
      await migratePglite(drizzlePglite({ client, schema }), { migrationsFolder: MIGRATIONS_DIR });
    },
    dumpDataDir: () => client.dumpDataDir('none'),
    async close() {
      await client.close();
      await releaseLock?.();
    },
  };
}

/** Rows of a raw query: int8 values arrive as strings from pg and as numbers from PGlite. */
export async function queryRows<T>(db: Db, query: ReturnType<typeof sql>): Promise<T[]> {
  const result: unknown = await db.execute(query);
  return (result as { rows: T[] }).rows;
}

/** Runs `work` in `dbTx` when the caller already holds one, otherwise in a new transaction. */
export async function inTransaction<T>(
  db: Db,
  dbTx: DbTx | undefined,
  work: (dbTx: DbTx) => Promise<T>,
): Promise<T> {
  return dbTx ? work(dbTx) : db.transaction(work);
}

/**
 * A statement fixed when the code is written, with `$1…` placeholders. Run by `runStatement`, it
 * skips the query builder; on PostgreSQL it is a named prepared statement, so each pooled
 * connection parses and plans it once.
 */
export interface Statement {
  /** What the statement does; the prepared statement's name adds a hash of `text` to it. */
  readonly name: string;
  readonly text: string;
}

const preparedNames = new WeakMap<Statement, string>();

/**
 * The name `statement` is prepared under: its own name and a hash of its text, so two texts can
 * never share a prepared statement (a connection refuses a second text under a name it knows),
 * whatever the names say.
 */
function preparedName(statement: Statement): string {
  let name = preparedNames.get(statement);
  if (name === undefined) {
    const hash = createHash('sha256').update(statement.text).digest('hex').slice(0, 12);
    name = `${statement.name}_${hash}`;
    preparedNames.set(statement, name);
  }
  return name;
}

/**
 * Runs `statement` with `values` in one round trip on `db` (a transaction when it is one: a
 * transaction is a handle too), and returns its rows. Values travel as text or numbers (or null):
 * pass bigints, dates and JSON already formatted, and cast in the SQL.
 */
export async function runStatement<T>(
  db: Db,
  statement: Statement,
  values: readonly (string | number | null)[],
  { commits = false }: { commits?: boolean } = {},
): Promise<T[]> {
  const tx = transactionClients.has(db as DbTx) ? (db as DbTx) : undefined;
  // The driver under a pool or a PostgreSQL transaction of ours, or PGlite outside one; any
  // other transaction (a PGlite one, a savepoint) goes through the query builder.
  const client: unknown = tx ? transactionClients.get(tx) : (db as { $client?: unknown }).$client;
  if (client instanceof pg.Pool && commits) {
    // A statement that commits by itself (`commits`, which only a statement run outside a
    // transaction can): a connection that fails once it is sent leaves the outcome unknown (one
    // that could not be had leaves nothing done).
    const connection = await client.connect();
    let broken: Error | undefined;
    try {
      const result = await connection.query<pg.QueryResultRow>({
        name: preparedName(statement),
        text: statement.text,
        values: [...values],
      });
      return result.rows as T[];
    } catch (error) {
      if (isDatabaseUnavailable(error)) broken = error as Error;
      if (leavesOutcomeUnknown(error)) throw new CommitOutcomeUnknown(error);
      throw error;
    } finally {
      connection.release(broken);
    }
  }
  if (client instanceof pg.Pool || client instanceof pg.Client) {
    const result = await client.query<pg.QueryResultRow>({
      name: preparedName(statement),
      text: statement.text,
      values: [...values],
    });
    return result.rows as T[];
  }
  if (client instanceof PGlite) {
    return (await client.query<T>(statement.text, [...values])).rows;
  }
  return queryRows<T>(tx ?? db, statementSql(statement.text, values));
}

/** The statement as a drizzle query: the same text, its placeholders bound to `values`. */
function statementSql(text: string, values: readonly (string | number | null)[]): SQL {
  // Split on placeholders: even entries are SQL text, odd ones the 1-based index of a value.
  const parts = text.split(/\$(\d+)/);
  return sql.join(
    parts.map((part, i) => (i % 2 === 0 ? sql.raw(part) : sql`${values[Number(part) - 1]}`)),
  );
}

/** What a query meets while the database is known not to answer: a 503, at once. */
export class DatabaseNotAnswering extends Error {
  override readonly name = 'DatabaseNotAnswering';
  /** SQLSTATE class 08 (connection exception): `isDatabaseUnavailable` knows it. */
  readonly code = '08006';
  constructor() {
    super('The database is not answering; failing fast until it does');
  }
}

/**
 * A circuit breaker for a database that accepts connections but answers nothing (a network black
 * hole, a hung server), where every query would otherwise wait for its own timeout.
 *
 * A watchdog looks at the pool every `hangTimeoutMs / 12`. When a connection has been checked
 * out for `hangTimeoutMs / 3` it probes the database on a fresh connection (`select 1`, bounded by
 * `hangTimeoutMs / 3`). A probe that gets no answer opens the breaker: every pooled connection is
 * destroyed (their queries fail now, as 503s), and while it is open every checkout fails at once
 * with DatabaseNotAnswering. A probe keeps running in the background; the first that succeeds
 * closes the breaker. So a request waits at most about `hangTimeoutMs`, and the service recovers
 * within a probe interval of the database answering again.
 */
function databaseBreaker(
  pool: pg.Pool,
  options: { databaseUrl: string; hangTimeoutMs: number; logger: FastifyBaseLogger },
): { stop(): void } {
  const suspectAfterMs = Math.round(options.hangTimeoutMs / 3);
  const probeTimeoutMs = Math.round(options.hangTimeoutMs / 3);
  const tickMs = Math.max(25, Math.round(options.hangTimeoutMs / 12));
  const clients = new Set<pg.PoolClient>();
  const checkedOut = new Map<pg.PoolClient, number>();
  let open = false;
  let probing = false;
  let stopped = false;

  pool.on('connect', (client) => clients.add(client));
  pool.on('remove', (client) => {
    clients.delete(client);
    checkedOut.delete(client);
  });
  pool.on('acquire', (client) => checkedOut.set(client, Date.now()));
  pool.on('release', (_error, client) => checkedOut.delete(client));

  // While open, a checkout fails at once instead of waiting on a connection that never answers.
  // pool.query checks out through this too.
  const connect = pool.connect.bind(pool) as (
    callback?: (error: Error | undefined, client?: pg.PoolClient, done?: () => void) => void,
  ) => Promise<pg.PoolClient> | undefined;
  Object.assign(pool, {
    connect(
      callback?: (error: Error | undefined, client?: pg.PoolClient, done?: () => void) => void,
    ) {
      if (!open) return connect(callback);
      const error = new DatabaseNotAnswering();
      if (callback) {
        callback(error);
        return undefined;
      }
      return Promise.reject(error);
    },
  });

  /** True when the database answered `select 1` on a fresh connection within the bound. */
  async function answers(): Promise<boolean> {
    const client = new pg.Client({
      connectionString: options.databaseUrl,
      connectionTimeoutMillis: probeTimeoutMs,
      query_timeout: probeTimeoutMs,
      application_name: 'fido-transactions-api-probe',
    });
    client.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        client.connect().then(async () => {
          await client.query('select 1');
          return true;
        }),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), probeTimeoutMs);
        }),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
      client.end().catch(() => undefined);
    }
  }

  function trip(): void {
    open = true;
    options.logger.warn(
      { database: 'not answering', hang_timeout_ms: options.hangTimeoutMs },
      'database not answering: failing fast (503) until it does',
    );
    // Their queries would wait for their own timeouts: fail them now.
    for (const client of clients) {
      (
        client as unknown as { connection?: { stream?: { destroy(): void } } }
      ).connection?.stream?.destroy();
    }
  }

  async function step(): Promise<void> {
    if (probing || stopped) return;
    const now = Date.now();
    const stuck = [...checkedOut.values()].some((since) => now - since >= suspectAfterMs);
    if (!open && !stuck) return;
    probing = true;
    try {
      const ok = await answers();
      if (stopped) return;
      if (!open && !ok) trip();
      else if (open && ok) {
        open = false;
        options.logger.info({ database: 'answering' }, 'database answering again');
      }
    } finally {
      probing = false;
    }
  }

  const watchdog = setInterval(() => void step(), tickMs);
  watchdog.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(watchdog);
    },
  };
}
