import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Config } from './config.js';
import { scheduledJobs } from './jobs/catalogue.js';
import { startScheduler, type Scheduler } from './jobs/scheduler.js';
import { analyticsRoutes } from './modules/analytics/analytics.routes.js';
import { eventsRoutes } from './modules/events/events.routes.js';
import {
  cacheWarmupHandler,
  HandlerRegistry,
  type EventHandler,
} from './modules/events/handlers.js';
import { registerHandlers } from './modules/events/outbox.js';
import { startWorker, type Worker } from './modules/events/worker.js';
import { webhooksRoutes } from './modules/webhooks/webhooks.routes.js';
import { createWebhooksService } from './modules/webhooks/webhooks.service.js';
import { createAnalyticsService } from './modules/analytics/analytics.service.js';
import { apiKeysRoutes } from './modules/api-keys/api-keys.routes.js';
import {
  createApiKeysService,
  looksLikeApiKey,
  type ApiKeysService,
} from './modules/api-keys/api-keys.service.js';
import { transactionsRoutes } from './modules/transactions/transactions.routes.js';
import { createTransactionsService } from './modules/transactions/transactions.service.js';
import {
  FieldCipher,
  loadOrCreateDevKeyRing,
  parseKeyRing,
  type KeyRing,
} from './platform/crypto.js';
import {
  createCache,
  memoryStore,
  redisStore,
  type Cache,
  type CacheStore,
} from './platform/cache.js';
import {
  callerIdentity,
  installAccessControl,
  type Authentication,
  type Scope,
} from './platform/auth.js';
import { openDatabase, type DatabaseHandle } from './platform/db.js';
import {
  memoryPositionStore,
  openReadReplicas,
  primaryOnly,
  redisPositionStore,
  type PositionStore,
  type ReadRouter,
} from './platform/read-replicas.js';
import { Redis } from 'ioredis';
import { createTokenVerifier, type TokenVerifier } from './platform/jwt.js';
import {
  createRateLimiter,
  memoryRateLimitStore,
  redisRateLimitStore,
  type RateLimitStore,
} from './platform/rate-limit.js';
import { installConditionalGets } from './platform/http-cache.js';
import { installSecurityHeaders } from './platform/security-headers.js';
import { healthRoutes } from './platform/health.js';
import { AppError, isDatabaseUnavailable, StartupError } from './platform/errors.js';
import {
  clientErrorHandler,
  frameworkErrors,
  installErrorHandling,
  RETRY_AFTER_SECONDS,
} from './platform/http-errors.js';
import { createIdempotency } from './platform/idempotency.js';
import { installJsonBodyParser } from './platform/json-body.js';
import { loggableUrl, loggerOptions, requestIdOf } from './platform/logging.js';
import { createMetrics, metricsRoutes } from './platform/metrics.js';
import type { Registry } from 'prom-client';
import { finishDocument } from './platform/openapi-document.js';
import { validatorCompiler } from './platform/validation.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The read cache (platform singleton), for background work that must invalidate it. */
    cache: Cache;
  }
}

export interface AppDeps {
  /** An already-open database (tests share one per file); otherwise opened from config. */
  database?: DatabaseHandle;
  /** Apply migrations before serving (start-up does; tests migrate once per file). */
  migrate?: boolean;
  logger?: FastifyBaseLogger;
  /** Encryption keys; otherwise from config (or the development key file). */
  keyRing?: KeyRing;
  /** Where cached reads live; otherwise Redis (REDIS_URL) or the in-process store. */
  cacheStore?: CacheStore;
  /** In-process consumers of committed events, run by the worker beside the built-in ones. */
  eventHandlers?: readonly EventHandler[];
  /**
   * Where users' write positions live when READ_DATABASE_URL is set; otherwise Redis (REDIS_URL)
   * or process memory. Tests share one between two apps.
   */
  positionStore?: PositionStore;
  /** Where rate-limit counts live; otherwise Redis (REDIS_URL) or process memory. */
  rateLimitStore?: RateLimitStore;
  /**
   * `api` (default): the HTTP API. `worker`: the background process (`npm run worker`): the event
   * worker and the scheduler, serving only /healthz, /readyz and /metrics. It checks no
   * credentials, so it neither needs nor refuses for want of a way to authenticate.
   */
  role?: 'api' | 'worker';
}

/** The service cannot start: nobody could ever authenticate. */
export class AuthSetupError extends StartupError {
  override readonly name = 'AuthSetupError';
}

/** While open, how often a process looks for a key created elsewhere (another replica, the CLI). */
const OPEN_MODE_RECHECK_MS = 5_000;

/**
 * Whether requests without credentials are let in: only outside production, with AUTH_MODE=auto,
 * no JWT verifier and no usable API key. Once a key exists the process closes for good (revoking
 * every key later does not reopen it; a restart decides afresh).
 */
async function openModeGate(
  config: Config,
  verifier: TokenVerifier | undefined,
  apiKeys: ApiKeysService,
  log: FastifyBaseLogger,
): Promise<() => Promise<boolean>> {
  const hasKey = await apiKeys.hasUsable();
  const required = config.nodeEnv === 'production' || config.authMode === 'required';
  if (required && !verifier && !hasKey) {
    throw new AuthSetupError(
      `${config.nodeEnv === 'production' ? 'NODE_ENV=production' : 'AUTH_MODE=required'} needs a ` +
        'way to authenticate, and none is configured: set JWT_SECRET, JWT_JWKS_URL or JWT_JWKS ' +
        'for user tokens, or create the first API key with ' +
        '`npm run cli -- keys create --scopes admin --name ops` ' +
        '(in the production image: `node dist/cli.js keys create --scopes admin --name ops`)',
    );
  }
  if (required || verifier || hasKey) return async () => false;

  let open = true;
  let checkedAt = Date.now();
  const close = (why: string) => {
    if (!open) return;
    open = false;
    log.warn({ auth: 'required' }, `authentication is now required: ${why}`);
  };
  apiKeys.onCreated(() => close('an API key was created'));
  log.warn(
    { auth: 'open' },
    'AUTHENTICATION IS OFF: no API key and no JWT verifier exist, so every request is let in ' +
      'as anonymous (development only; production refuses to start like this). Create a key ' +
      'to turn it on: npm run cli -- keys create --scopes admin --name me',
  );
  return async () => {
    if (open && Date.now() - checkedAt >= OPEN_MODE_RECHECK_MS) {
      checkedAt = Date.now();
      try {
        if (await apiKeys.hasUsable()) close('an API key exists');
      } catch {
        // The database is down: the request that asked will fail on its own.
      }
    }
    return open;
  };
}

const API_VERSION = '0.1.0';
/** Browsers may reuse a CORS preflight answer this long. */
const CORS_PREFLIGHT_MAX_AGE_SECONDS = 600;
/** Swagger UI's page: its own scripts and styles only, and "Try it out" to this origin. */
const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; font-src 'self' data:; frame-ancestors 'none'; " +
  "img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; " +
  "style-src 'self' 'unsafe-inline'; connect-src 'self'";
/** How long start-up waits for a database that is still coming up (a container starting beside us). */
const DATABASE_STARTUP_WAIT_MS = 30_000;
const DATABASE_STARTUP_RETRY_MS = 1_000;
/** How long start-up waits for Redis to connect before serving without it. */
const CACHE_STARTUP_WAIT_MS = 2_000;

/** Runs `work`, retrying while the database is unreachable, for at most `waitMs`. */
async function untilAvailable(
  work: () => Promise<void>,
  log: FastifyBaseLogger,
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

/** A warm-up for a user whose last transaction is gone finds nothing to cache; that is fine. */
function ignoreNotFound(error: unknown): void {
  if (error instanceof AppError && error.status === 404) return;
  throw error;
}

/** Loads the key ring from config, or in development a key generated once into DATA_DIR. */
export async function loadKeyRing(config: Config): Promise<KeyRing> {
  const ring = parseKeyRing({ secretKey: config.secretKey, encryptionKeys: config.encryptionKeys });
  if (ring) return ring;
  // config.ts already refuses production without a key.
  return loadOrCreateDevKeyRing(config.dataDir);
}

/** The OpenAPI document, Swagger UI at /docs, the welcome route and /openapi.json. */
async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Fido Transactions API',
        version: API_VERSION,
        description:
          "Record users' financial transactions and answer questions about them. Money is " +
          'exact (integer minor units), names are encrypted at rest, and writes are safe to retry ' +
          'with `Idempotency-Key`.\n\n' +
          'Patterns in this document mean the same with and without the regular-expression `u` ' +
          'flag; lengths count characters (code points), as JSON Schema does.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: '/', description: 'The server that serves this document' }],
      tags: [
        { name: 'transactions', description: 'Create, read, update and delete transactions' },
        { name: 'analytics', description: 'Per-user figures, exact the moment a write commits' },
        { name: 'events', description: 'The audit trail and pull-based change feed' },
        {
          name: 'webhooks',
          description: 'Signed, retried, inspectable push delivery of every committed change',
        },
        { name: 'api-keys', description: 'Service API keys (admin scope)' },
        { name: 'operations', description: 'Health, readiness and documentation' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'A service API key (`fido_<id>_<secret>`, with scopes) or an end-user token (a JWT ' +
              "whose `sub` is a user_id: only that user's data). Each operation names the scope " +
              'it requires; `admin` holds every scope.',
          },
        },
      },
    },
    // Statuses, headers, shared components and portable patterns the route schemas cannot say.
    transformObject: (generated) =>
      'openapiObject' in generated
        ? (finishDocument(generated.openapiObject as Record<string, unknown>) as Partial<
            typeof generated.openapiObject
          >)
        : generated.swaggerObject,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // Swagger UI needs its own scripts and styles (same origin, nothing inline); "Authorize"
    // keeps the token for the page's lifetime only.
    staticCSP: DOCS_CSP,
    uiConfig: { persistAuthorization: false },
  });

  app.get(
    '/',
    {
      schema: {
        tags: ['operations'],
        summary: 'Welcome',
        response: { 200: Type.Object({ message: Type.String() }) },
      },
      config: { access: 'public' },
    },
    async () => ({ message: 'Welcome to Fido Transactions API' }),
  );
  app.get('/openapi.json', { schema: { hide: true }, config: { access: 'public' } }, async () =>
    app.swagger(),
  );
}

/**
 * The router for reads that may use a replica: the primary alone without READ_DATABASE_URL.
 * Users' write positions live in Redis when there is one (every process sees them), else here.
 */
async function openReads(
  config: Config,
  database: DatabaseHandle,
  deps: AppDeps,
  registry: Registry,
  log: FastifyBaseLogger,
): Promise<ReadRouter> {
  if (config.readDatabaseUrls.length === 0) return primaryOnly(database.db);
  let client: Redis | undefined;
  let positions = deps.positionStore;
  if (!positions && config.redisUrl) {
    client = new Redis(config.redisUrl, {
      commandTimeout: config.cacheTimeoutMs,
      connectTimeout: Math.max(config.cacheTimeoutMs, 1_000),
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
    // Failed commands are counted and logged by the router.
    client.on('error', () => undefined);
    positions = redisPositionStore(client, config.cachePrefix);
  }
  const router = await openReadReplicas({
    primary: database.db,
    urls: config.readDatabaseUrls,
    positions: positions ?? memoryPositionStore(config.cacheMaxEntries),
    maxLagMs: config.readReplicaMaxLagMs,
    poolSize: config.dbPoolSize,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    connectTimeoutMs: config.dbConnectTimeoutMs,
    logger: log,
    registry,
  });
  return {
    ...router,
    async close() {
      await router.close();
      client?.disconnect();
    },
  };
}

/** The one composition root: config and dependencies in, a ready Fastify instance out. */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: loggerOptions(config.logLevel) }),
    genReqId: requestIdOf,
    // One lean line per request (the onResponse hook below) instead of Fastify's two.
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      disableRequestLogging: true,
    }),
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs,
    trustProxy: config.trustProxy,
    // Fastify's own closing answer is not in our error shape; the onRequest hook below is.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // A user id of 128 characters can take 256 UTF-16 units (and more once percent-encoded).
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 1_024 },
    frameworkErrors,
    clientErrorHandler,
    // Larger request heads are refused by Node itself (431) before any of our code runs.
    http: { maxHeaderSize: config.maxHeaderBytes },
    keepAliveTimeout: config.keepAliveTimeoutMs,
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Beyond this many open sockets, new connections are dropped at once rather than queued.
  if (config.maxConnections > 0) app.server.maxConnections = config.maxConnections;

  app.setValidatorCompiler(validatorCompiler);
  // JSON only: anything else, text included, is refused with 415 instead of half-parsed.
  app.removeContentTypeParser('text/plain');
  installJsonBodyParser(app);
  installErrorHandling(app);
  installConditionalGets(app);
  // First of the onRequest hooks: answers refused early (401, 429, shutting down) get them too.
  installSecurityHeaders(app, {
    // A JSON API loads nothing; Swagger UI sets its own policy on /docs (below).
    // Exactly the documented policy: without useDefaults: false helmet adds its whole default set.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
  });

  const ownsDatabase = !deps.database;
  const database =
    deps.database ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.dbPoolSize,
      statementTimeoutMs: config.dbStatementTimeoutMs,
      connectTimeoutMs: config.dbConnectTimeoutMs,
      logger: app.log,
    }));
  if (deps.migrate ?? ownsDatabase) {
    await untilAvailable(() => database.migrate(), app.log, DATABASE_STARTUP_WAIT_MS);
  }

  const metrics = createMetrics(database);
  const reads = await openReads(config, database, deps, metrics.registry, app.log);
  const cacheStore =
    deps.cacheStore ??
    (config.redisUrl
      ? redisStore({
          url: config.redisUrl,
          prefix: config.cachePrefix,
          timeoutMs: config.cacheTimeoutMs,
          logger: app.log,
        })
      : memoryStore(config.cacheMaxEntries));
  const cache = createCache(cacheStore, {
    ttlSeconds: config.cacheExpirationSeconds,
    logger: app.log,
    registry: metrics.registry,
    beforeInvalidate: (user) => reads.written(user),
  });
  app.decorate('cache', cache);
  // A first request should not find Redis still connecting and count that as an outage; a
  // Redis that is really down does not hold start-up back longer than this.
  await cacheStore.ready?.(CACHE_STARTUP_WAIT_MS);

  const cipher = new FieldCipher(deps.keyRing ?? (await loadKeyRing(config)));
  let worker: Worker | undefined;
  const transactions = createTransactionsService({
    db: database.db,
    cipher,
    defaultCurrency: config.defaultCurrency,
    analyticsTimeZone: config.analyticsTimeZone,
    pageSizeMax: config.pageSizeMax,
    cache,
    reads,
    afterCommit: () => worker?.nudge(),
  });
  const analytics = createAnalyticsService({
    db: database.db,
    defaultCurrency: config.defaultCurrency,
    timeZone: config.analyticsTimeZone,
    cache,
    reads,
  });
  const webhooks = createWebhooksService({
    db: database.db,
    cipher,
    timeoutMs: config.webhookTimeoutMs,
    allowPrivateTargets: config.webhookAllowPrivateTargets,
    maxEndpoints: config.webhookMaxEndpoints,
  });
  const idempotency = createIdempotency({
    db: database.db,
    cipher,
    ttlHours: config.idempotencyKeyTtlHours,
    // Keys of different callers never meet: a replay only ever returns the caller's own answer.
    scopeOf: (request) => callerIdentity(request.principal),
  });

  const apiKeys = createApiKeysService({ db: database.db });
  const verifier = createTokenVerifier({
    secret: config.jwtSecret,
    jwksUrl: config.jwtJwksUrl,
    jwks: config.jwtJwks,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockToleranceSeconds: config.jwtClockToleranceSeconds,
  });
  const serving = (deps.role ?? 'api') === 'api';
  let isOpen: () => Promise<boolean> = async () => false;
  try {
    if (serving) isOpen = await openModeGate(config, verifier, apiKeys, app.log);
  } catch (error) {
    // Nothing has been handed to onClose yet: give back what was opened before refusing.
    await cache.close();
    await reads.close();
    if (ownsDatabase) await database.close();
    throw error;
  }
  const rateLimiter = createRateLimiter({
    store:
      deps.rateLimitStore ??
      (!serving
        ? memoryRateLimitStore()
        : config.redisUrl
          ? redisRateLimitStore({
              url: config.redisUrl,
              prefix: config.cachePrefix,
              timeoutMs: config.cacheTimeoutMs,
            })
          : memoryRateLimitStore()),
    windowSeconds: config.rateLimitWindowSeconds,
    logger: app.log,
    registry: metrics.registry,
  });
  await rateLimiter.ready(CACHE_STARTUP_WAIT_MS);
  async function authenticate(credential: string): Promise<Authentication> {
    if (looksLikeApiKey(credential)) {
      const found = await apiKeys.check(credential);
      if (!found.ok) return { ok: false, reason: 'invalid', detail: `${found.reason} API key` };
      return {
        ok: true,
        principal: {
          kind: 'key',
          keyId: found.row.id,
          scopes: new Set(found.row.scopes as Scope[]),
        },
      };
    }
    if (!verifier) return { ok: false, reason: 'invalid', detail: 'token, and no JWT verifier' };
    const token = await verifier.verify(credential);
    return token.ok
      ? { ok: true, principal: { kind: 'user', userId: token.userId } }
      : { ok: false, reason: token.reason, detail: `user token: ${token.detail}` };
  }

  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    if (closing) {
      // A request that arrives on a kept-alive connection while shutting down: send it elsewhere.
      void reply.header('connection', 'close').header('retry-after', String(RETRY_AFTER_SECONDS));
      throw new AppError('SERVICE_UNAVAILABLE', 'Service is shutting down, please retry');
    }
    inFlight += 1;
    reply.raw.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
  });
  // Before any route: a route registered from here on without config.access stops the build.
  if (serving) {
    installAccessControl(app, {
      authenticate,
      isOpen,
      limiter: rateLimiter,
      rateLimitMax: config.rateLimitMax,
      rateLimitIpMax: config.rateLimitIpMax,
    });
  }
  if (serving && config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: [...config.corsOrigins],
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: [
        'authorization',
        'content-type',
        'idempotency-key',
        'if-match',
        'if-none-match',
        'x-request-id',
      ],
      exposedHeaders: [
        'etag',
        'location',
        'retry-after',
        'idempotent-replayed',
        'x-request-id',
        'ratelimit-limit',
        'ratelimit-remaining',
        'ratelimit-reset',
        'ratelimit-policy',
      ],
      maxAge: CORS_PREFLIGHT_MAX_AGE_SECONDS,
    });
  }
  // Requests still running when the server stops (a create committing, say) must find the cache
  // and the database open: their invalidations and queries would fail otherwise. So both close
  // only once the last request is done, or after the shutdown bound.
  app.addHook('onClose', async () => {
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, config.shutdownTimeoutMs);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await cache.close();
    await rateLimiter.close();
    await reads.close();
    if (ownsDatabase) await database.close();
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequests.observe(
      {
        method: request.method,
        // The pattern, not the URL: one series per route, not per user or id.
        route: request.routeOptions.url ?? 'unmatched',
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
    request.log.info(
      {
        method: request.method,
        // The query may carry a credential (`?access_token=`): its values are redacted.
        url: loggableUrl(request.url),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request completed',
    );
  });

  if (serving) await registerDocs(app);

  await app.register(healthRoutes, {
    database,
    cache,
    replicas: reads,
    auth: async () => ((await isOpen()) ? 'open' : 'required'),
    announceOpen: serving && config.nodeEnv === 'development',
  });
  await app.register(metricsRoutes, {
    metrics,
    access: config.metricsAccess === 'admin' ? { scope: 'admin' } : 'public',
  });
  if (serving) {
    await app.register(transactionsRoutes, { transactions, idempotency });
    await app.register(apiKeysRoutes, { apiKeys });
    await app.register(analyticsRoutes, { analytics });
    await app.register(eventsRoutes, { db: database.db });
    await app.register(webhooksRoutes, { webhooks });
  }

  if (config.worker === 'inline' || !serving) {
    const handlers = new HandlerRegistry([
      cacheWarmupHandler({
        history: (userId) => transactions.history(userId, {}).catch(ignoreNotFound),
        analytics: (userId, currency) =>
          analytics.allTime(userId, { currency }).catch(ignoreNotFound),
      }),
      ...(deps.eventHandlers ?? []),
    ]);
    app.addHook('onReady', async () => {
      // Recorded before the app is ready, so every event written from then on is owed to them.
      // If the database is not there yet, the worker records them at its first step instead.
      await registerHandlers(
        database.db,
        handlers.all().map((h) => ({ name: h.name, types: h.types ?? [] })),
      ).catch((error: unknown) => {
        app.log.warn({ err: error }, 'event handlers not recorded yet; the worker will retry');
      });
      worker = startWorker({
        db: database.db,
        handlers,
        webhooks,
        pollMs: config.workerPollMs,
        concurrency: config.workerConcurrency,
        attemptTimeoutMs: config.webhookTimeoutMs,
        retryWindowMs: config.webhookRetryHours * 3_600_000,
        backoffBaseMs: config.webhookBackoffBaseMs,
        backoffMaxMs: config.webhookBackoffMaxMs,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
        logger: app.log,
        metrics,
      });
    });
    // Before the database closes: attempts in flight record their outcome first.
    app.addHook('preClose', async () => {
      await worker?.stop();
    });
  }

  if (config.scheduler === 'on') {
    let scheduler: Scheduler | undefined;
    // Started once the app is ready and stopped before the database closes; its first tick
    // comes later, so start-up never waits on it.
    app.addHook('onReady', async () => {
      scheduler = startScheduler(
        database.db,
        scheduledJobs({ config, db: database.db, metrics, cache, cipher, logger: app.log }),
        app.log,
      );
    });
    app.addHook('preClose', async () => {
      await scheduler?.stop();
    });
  }

  await app.ready();
  return app;
}
