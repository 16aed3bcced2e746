import { parseArgs } from 'node:util';
import { buildApp, loadKeyRing } from './app.js';
import { reconcileAll, reconcileUser } from './modules/analytics/index.js';
import { retireHandler } from './modules/events/index.js';
import { loadConfig, readDotEnv, type Config } from './config.js';
import type { FastifyBaseLogger } from 'fastify';
import { FieldCipher, generateKeyBase64 } from './platform/crypto.js';
import { createCache, redisStore } from './platform/cache.js';
import { redisConnectionFrom } from './plugins/redis-connection.js';
import { DataDirInUseError, openDatabase } from './db/client.js';
import { describeFailure } from './platform/process.js';
import {
  ROTATION_BATCH_SIZE_DEFAULT,
  ROTATION_BATCH_SIZE_MAX,
  rotateKeys,
} from './platform/key-rotation.js';
import { createLogger } from './platform/logging.js';
import { authenticationSetup, nobodyCanAuthenticate } from './plugins/access-control.js';
import { SCOPES } from './platform/auth.js';
import type { ValidationIssue } from './platform/errors.js';
import {
  createApiKeysService,
  newApiKeyFromBody,
  validateCreateApiKeyBody,
} from './modules/api-keys/index.js';
import type { Db } from './db/client.js';
import {
  MIGRATION_USAGE,
  runMigrationCommand,
  type MigrationOptions,
} from './modules/legacy/index.js';

/** Keys `keys list` prints at most: a list longer than this wants the HTTP API's pages. */
const KEYS_LIST_MAX = 10_000;

type KeysOptions = { name?: string; scopes?: string; 'expires-in-days'?: string };

/**
 * The `POST /api/v1/api-keys` body these options stand for, as the server would receive it (JSON
 * text and back). `keys create` validates it with the route's own schema, or sends it to a running
 * server, so the CLI accepts and refuses exactly what the API does. `--scopes` is a comma-separated
 * list: the spaces around its commas are the list's syntax, not part of a scope.
 */
function createKeyBody(options: KeysOptions): unknown {
  const days = options['expires-in-days'];
  return JSON.parse(
    JSON.stringify({
      name: options.name ?? '',
      scopes: (options.scopes ?? '').split(',').map((scope) => scope.trim()),
      ...(days === undefined ? {} : { expires_in_days: Number(days) }),
    }),
  );
}

/** A 422's `detail`, one line per problem, named as the body's fields. */
function writeIssues(issues: readonly Pick<ValidationIssue, 'loc' | 'msg'>[]): void {
  const problems = issues.map((issue) => `${issue.loc.slice(1).join('.')}: ${issue.msg}`);
  process.stderr.write(`${problems.join('\n')}\n`);
}

/** `keys create|list|revoke`: how the first key is made, before any key can call the API. */
async function keysCommand(db: Db, args: string[], options: KeysOptions): Promise<number> {
  const apiKeys = createApiKeysService({ db });
  const [action, id] = args;
  switch (action) {
    case 'create': {
      const body = validateCreateApiKeyBody(createKeyBody(options));
      if (!body.ok) {
        writeIssues(body.issues);
        return 2;
      }
      const { row, key } = await apiKeys.create(newApiKeyFromBody(body.value));
      // The key alone on stdout, so `KEY=$(… keys create …)` captures exactly it.
      process.stdout.write(`${key}\n`);
      process.stderr.write(
        `Created API key ${row.id} (${row.name}; scopes ${row.scopes.join(', ')}; ` +
          `expires ${row.expiresAt?.toISOString() ?? 'never'}). ` +
          'It is shown this once and stored only as a hash: keep it somewhere safe.\n',
      );
      return 0;
    }
    case 'list': {
      const rows = await apiKeys.list(undefined, KEYS_LIST_MAX);
      const lines = rows.map((row) =>
        [
          row.id,
          apiKeys.statusOf(row).padEnd(7),
          row.createdAt.toISOString(),
          (row.expiresAt?.toISOString() ?? 'never').padEnd(24),
          (row.lastUsedAt?.toISOString() ?? 'never').padEnd(24),
          row.scopes.join(','),
          row.name,
        ].join('  '),
      );
      process.stdout.write(
        `${['id              ', 'status ', 'created                 ', 'expires                 ', 'last used               ', 'scopes', 'name'].join('  ')}\n` +
          lines.map((line) => `${line}\n`).join(''),
      );
      return 0;
    }
    case 'revoke': {
      if (!id) {
        process.stderr.write('Usage: keys revoke ID\n');
        return 2;
      }
      try {
        const row = await apiKeys.revoke(id);
        process.stderr.write(
          `Revoked API key ${row.id} (${row.name}) at ${row.revokedAt?.toISOString() ?? ''}\n`,
        );
        return 0;
      } catch (error) {
        process.stderr.write(`${(error as Error).message}\n`);
        return 1;
      }
    }
    default:
      process.stderr.write(`Unknown keys command: ${action ?? '(none)'}\n\n${USAGE}`);
      return 2;
  }
}

/**
 * `keys create` while a server runs on the embedded database: the data directory is the server's,
 * so the key is made through the server's API instead. A server that is still open (development
 * before its first key, when its start-up hint says to run this command) lets that in; one that
 * requires credentials already does not, and the operator is told what to do instead.
 */
async function createKeyThroughServer(
  config: Config,
  options: KeysOptions,
  inUse: DataDirInUseError,
): Promise<number> {
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
  let response: Response;
  try {
    response = await fetch(`${origin}/api/v1/api-keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(createKeyBody(options)),
      signal: AbortSignal.timeout(10_000),
    });
  } catch {
    // Nothing answers on PORT: the directory is held by a process we cannot ask.
    process.stderr.write(`${inUse.message}\n`);
    return 1;
  }
  const body = (await response.json().catch(() => ({}))) as {
    data?: { id: string; name: string; scopes: string[]; expires_at: string | null; key: string };
    message?: string;
    detail?: { loc: (string | number)[]; msg: string }[];
  };
  if (response.status === 201 && body.data) {
    const { data } = body;
    process.stdout.write(`${data.key}\n`);
    process.stderr.write(
      `Created API key ${data.id} (${data.name}; scopes ${data.scopes.join(', ')}; ` +
        `expires ${data.expires_at ?? 'never'}) through the server running on ${origin}, ` +
        'which from now on requires credentials. ' +
        'It is shown this once and stored only as a hash: keep it somewhere safe.\n',
    );
    return 0;
  }
  if (response.status === 401 || response.status === 403) {
    process.stderr.write(
      `DATA_DIR ${inUse.dataDir} is in use by the server running on ${origin}, which already ` +
        'requires credentials: create more keys through its API with an admin key ' +
        `(curl -X POST ${origin}/api/v1/api-keys, see docs/access-control.md), ` +
        'or stop the server and run this command again.\n',
    );
    return 1;
  }
  if (response.status === 422 && body.detail) {
    writeIssues(body.detail);
    return 2;
  }
  process.stderr.write(
    `The server running on ${origin} answered ${response.status}: ${body.message ?? ''}\n`,
  );
  return 1;
}

const USAGE = `Usage: fido <command> [options]

Commands:
  migrate                     apply database migrations and exit
  preflight                   apply migrations, then exit 1 with what to do when the API could
                              not start: NODE_ENV=production (or AUTH_MODE=required) with no
                              API key and no JWT setting (docker compose runs it first)
  rotate-keys [--batch-size N]
                              re-encrypt every stored name and secret under the active key
                              (safe to interrupt with Ctrl-C and run again)
  reconcile [--user ID]       recompute analytics rollups from the raw rows and repair drift,
                              for one user or for all (needed after changing ANALYTICS_TIMEZONE)
  retire-handler NAME         stop owing events to an in-process event handler that no worker
                              runs any more, and drop the deliveries still pending for it
  keys create --name NAME --scopes S1,S2 [--expires-in-days N]
                              create a service API key and print it (once: only its hash
                              is stored). Scopes: ${SCOPES.join(', ')}
  keys list                   list API keys (ids, names, scopes, status; never secrets)
  keys revoke ID              revoke an API key
${MIGRATION_USAGE}  generate-key                print a new random encryption key (base64, 32 bytes)
  openapi                     print the OpenAPI document as JSON
`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'batch-size': { type: 'string' },
      user: { type: 'string' },
      name: { type: 'string' },
      scopes: { type: 'string' },
      'expires-in-days': { type: 'string' },
      file: { type: 'string' },
      report: { type: 'string' },
      currency: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'emit-events': { type: 'boolean' },
      format: { type: 'string' },
      since: { type: 'string' },
      output: { type: 'string' },
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
    // Nor does it need credentials: a fresh database has no key, which only production minds.
    const app = await buildApp(
      { ...config, logLevel: 'silent', nodeEnv: 'test', authMode: 'auto' },
      {
        migrate: true,
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
  const migration = await migrationCommand(command, config, logger, values);
  if (migration !== undefined) return migration;
  let database;
  try {
    database = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: 2,
      statementTimeoutMs: config.dbStatementTimeoutMs,
      connectTimeoutMs: config.dbConnectTimeoutMs,
      logger,
    });
  } catch (error) {
    if (error instanceof DataDirInUseError && command === 'keys' && positionals[1] === 'create') {
      return createKeyThroughServer(config, values, error);
    }
    throw error;
  }
  try {
    switch (command) {
      case 'migrate':
        await database.migrate();
        logger.info({ database: database.kind }, 'migrations applied');
        return 0;
      case 'preflight': {
        await database.migrate();
        const apiKeys = createApiKeysService({ db: database.db });
        if (nobodyCanAuthenticate(await authenticationSetup(config, apiKeys))) {
          process.stderr.write(
            'The API will not start yet: credentials are required and nobody could present ' +
              'any (no API key, no JWT setting). Create the first key with ' +
              '`node dist/cli.js keys create --scopes admin --name ops` ' +
              '(Docker Compose: `docker compose run --rm setup keys create --scopes admin --name ops`), ' +
              'then start again.\n',
          );
          return 1;
        }
        logger.info({ database: database.kind }, 'migrations applied; the API can start');
        return 0;
      }
      case 'keys':
        await database.migrate();
        return await keysCommand(database.db, positionals.slice(1), values);
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
        const redis = redisConnectionFrom(config);
        const cacheStore = redis
          ? redisStore({ connection: redis, prefix: config.cachePrefix })
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
          await redis?.close();
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

/** The shortest statement timeout `import-legacy`, `import` and `export` run with. */
const IMPORT_STATEMENT_TIMEOUT_MS = 120_000;

/** `import-legacy`, `import` and `export`, which open the database only when they need it. */
async function migrationCommand(
  command: string,
  config: Config,
  logger: FastifyBaseLogger,
  values: MigrationOptions,
): Promise<number | undefined> {
  if (!['import-legacy', 'import', 'export'].includes(command)) return undefined;
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  // Imported users' cached reads are invalidated in Redis, batch by batch; an in-process cache
  // belongs to the server process and ages out within CACHE_EXPIRATION.
  const cache = config.redisUrl
    ? createCache(
        redisStore({
          url: config.redisUrl,
          prefix: config.cachePrefix,
          timeoutMs: config.cacheTimeoutMs,
          logger,
        }),
        { ttlSeconds: config.cacheExpirationSeconds, logger },
      )
    : undefined;
  try {
    return await runMigrationCommand(
      command,
      {
        config,
        openDatabase: async () => {
          const database = await openDatabase({
            databaseUrl: config.databaseUrl,
            dataDir: config.dataDir,
            poolSize: 2,
            // A batch of thousands of rows is one statement: the API's per-request bound would
            // cut it short on a busy server, and a cut batch only has to be sent again.
            statementTimeoutMs: Math.max(config.dbStatementTimeoutMs, IMPORT_STATEMENT_TIMEOUT_MS),
            connectTimeoutMs: config.dbConnectTimeoutMs,
            logger,
          });
          try {
            await database.migrate();
          } catch (error) {
            await database.close();
            throw error;
          }
          return database;
        },
        loadKeyRing: () => loadKeyRing(config),
        invalidate: cache
          ? async (userIds) => {
              for (const userId of userIds) await cache.invalidate(userId);
            }
          : undefined,
        stdout: process.stdout,
        stderr: process.stderr,
        signal: controller.signal,
      },
      values,
    );
  } finally {
    await cache?.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${describeFailure(error)}\n`);
    process.exit(1);
  },
);
