import { parseArgs } from 'node:util';
import { buildApp, loadKeyRing } from './app.js';
import { reconcileAll, reconcileUser } from './modules/analytics/reconciliation.js';
import { retireHandler } from './modules/events/outbox.js';
import { ConfigError, loadConfig, readDotEnv } from './config.js';
import { FieldCipher, generateKeyBase64 } from './platform/crypto.js';
import { createCache, redisStore } from './platform/cache.js';
import { openDatabase } from './platform/db.js';
import {
  ROTATION_BATCH_SIZE_DEFAULT,
  ROTATION_BATCH_SIZE_MAX,
  rotateKeys,
} from './platform/key-rotation.js';
import { createLogger } from './platform/logging.js';

const USAGE = `Usage: fido <command> [options]

Commands:
  migrate                     apply database migrations and exit
  rotate-keys [--batch-size N]
                              re-encrypt every stored name and secret under the active key
                              (safe to interrupt with Ctrl-C and run again)
  reconcile [--user ID]       recompute analytics rollups from the raw rows and repair drift,
                              for one user or for all (needed after changing ANALYTICS_TIMEZONE)
  retire-handler NAME         stop owing events to an in-process event handler that no worker
                              runs any more, and drop the deliveries still pending for it
  generate-key                print a new random encryption key (base64, 32 bytes)
  openapi                     print the OpenAPI document as JSON
`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'batch-size': { type: 'string' },
      user: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (command === 'generate-key') {
    process.stdout.write(`${generateKeyBase64()}\n`);
    return 0;
  }

  readDotEnv();
  const config = loadConfig();

  if (command === 'openapi') {
    // The document depends on the routes only: an in-memory database and a throwaway key do.
    const app = await buildApp(
      { ...config, logLevel: 'silent' },
      {
        database: await openDatabase({
          dataDir: 'memory://',
          poolSize: 1,
          statementTimeoutMs: config.dbStatementTimeoutMs,
          connectTimeoutMs: config.dbConnectTimeoutMs,
          logger: createLogger('silent'),
        }),
        keyRing: { activeKeyId: 'openapi', keys: new Map([['openapi', Buffer.alloc(32)]]) },
      },
    );
    process.stdout.write(`${JSON.stringify(app.swagger(), null, 2)}\n`);
    await app.close();
    return 0;
  }

  const logger = createLogger(config.logLevel);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: 2,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    connectTimeoutMs: config.dbConnectTimeoutMs,
    logger,
  });
  try {
    switch (command) {
      case 'migrate':
        await database.migrate();
        logger.info({ database: database.kind }, 'migrations applied');
        return 0;
      case 'rotate-keys': {
        const batchSize = Number(values['batch-size'] ?? ROTATION_BATCH_SIZE_DEFAULT);
        if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > ROTATION_BATCH_SIZE_MAX) {
          process.stderr.write(
            `--batch-size must be a whole number from 1 to ${ROTATION_BATCH_SIZE_MAX}\n`,
          );
          return 2;
        }
        await database.migrate();
        const cipher = new FieldCipher(await loadKeyRing(config));
        const controller = new AbortController();
        const interrupt = () => controller.abort();
        process.once('SIGINT', interrupt);
        process.once('SIGTERM', interrupt);
        const result = await rotateKeys(database.db, cipher, {
          batchSize,
          signal: controller.signal,
          logger,
        });
        logger.info({ ...result, active_key_id: cipher.activeKeyId }, 'key rotation finished');
        if (result.failed > 0) return 1;
        return result.interrupted ? 130 : 0;
      }
      case 'retire-handler': {
        const name = positionals[1];
        if (!name) {
          process.stderr.write('retire-handler needs the handler name\n');
          return 2;
        }
        await database.migrate();
        const dropped = await retireHandler(database.db, name);
        logger.info({ handler: name, pending_dropped: dropped }, 'event handler retired');
        return 0;
      }
      case 'reconcile': {
        await database.migrate();
        // Repaired users' cached answers are invalidated in Redis; an in-process cache belongs to
        // the server process and ages out within CACHE_EXPIRATION.
        const cacheStore = config.redisUrl
          ? redisStore({
              url: config.redisUrl,
              prefix: config.cachePrefix,
              timeoutMs: config.cacheTimeoutMs,
              logger,
            })
          : undefined;
        const cache = cacheStore
          ? createCache(cacheStore, { ttlSeconds: config.cacheExpirationSeconds, logger })
          : undefined;
        // Reconciliation must not run before Redis can take its invalidations.
        await cacheStore?.ready?.(5_000);
        let invalidationFailed = false;
        const invalidate = async (userId: string) => {
          const done = (await cache?.invalidate(userId)) ?? true;
          invalidationFailed ||= !done;
          return done;
        };
        let drift;
        try {
          if (values.user) {
            const found = await reconcileUser(database.db, values.user, config.analyticsTimeZone);
            if (found.rows > 0) await invalidate(values.user);
            drift = { users: 1, drift: found, failedUsers: 0 };
          } else {
            drift = await reconcileAll(database.db, {
              timeZone: config.analyticsTimeZone,
              batchSize: config.reconcileBatchSize,
              logger,
              invalidate,
            });
          }
        } finally {
          await cache?.close();
        }
        logger.info(
          {
            users: drift.users,
            drift_rows: drift.drift.rows,
            drift_count: drift.drift.count,
            drift_amount_minor: drift.drift.amountMinor.toString(),
            failed_users: drift.failedUsers,
            cache_invalidation_failed: invalidationFailed,
          },
          'reconciliation finished',
        );
        // Users left unrepaired, or repaired answers still cached: the operator must know.
        return drift.failedUsers > 0 || invalidationFailed ? 1 : 0;
      }
      default:
        process.stderr.write(`Unknown command: ${command}\n\n${USAGE}`);
        return 2;
    }
  } finally {
    await database.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message =
      error instanceof ConfigError ? error.message : String((error as Error)?.stack ?? error);
    process.stderr.write(`${message}\n`);
    process.exit(1);
  },
);
