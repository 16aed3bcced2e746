import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { isDatabaseUnavailable } from '../platform/errors.js';
import { openDatabase, type DatabaseHandle } from '../db/client.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The primary database: every write, and the reads that must see them. */
    database: DatabaseHandle;
  }
}

/** How long start-up waits for a database that is still coming up (a container starting beside us). */
const DATABASE_STARTUP_WAIT_MS = 30_000;
const DATABASE_STARTUP_RETRY_MS = 1_000;

export interface DatabasePluginOptions {
  config: Config;
  /** An already-open database (tests share one per file): used as is, and left open on close. */
  database?: DatabaseHandle | undefined;
  /** Apply migrations before serving; by default only to a database this plugin opened. */
  migrate?: boolean | undefined;
}

/** Runs `work`, retrying while the database is unreachable, for at most `waitMs`. */
async function untilAvailable(
  work: () => Promise<void>,
  log: FastifyInstance['log'],
  waitMs: number,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await work();
      return;
    } catch (error) {
      if (!isDatabaseUnavailable(error) || Date.now() >= deadline) throw error;
      log.warn({ err: error }, 'database not reachable yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, DATABASE_STARTUP_RETRY_MS));
    }
  }
}

/**
 * The primary database (`app.database`): opened from config (PostgreSQL, or embedded PGlite) or
 * given, migrated, and closed last (it is registered first), after every request has drained.
 * Read replicas are opened here too, beside the primary, and closed with it.
 */
export const databasePlugin = fp<DatabasePluginOptions>(
  async (app, { config, database: given, migrate }) => {
    const database =
      given ??
      (await openDatabase({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        poolSize: config.dbPoolSize,
        statementTimeoutMs: config.dbStatementTimeoutMs,
        connectTimeoutMs: config.dbConnectTimeoutMs,
        hangTimeoutMs: config.dbHangTimeoutMs,
        logger: app.log,
      }));
    // Handed to onClose before anything else can fail: a failed migration still closes it.
    if (!given) app.addHook('onClose', async () => database.close());
    app.decorate('database', database);
    if (migrate ?? !given) {
      await untilAvailable(() => database.migrate(), app.log, DATABASE_STARTUP_WAIT_MS);
    }
  },
  { name: 'database', fastify: '5.x' },
);
