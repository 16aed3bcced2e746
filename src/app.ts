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
import { loadEvent, recordManualAttempt } from './modules/events/outbox.js';
import { startWorker, type Worker } from './modules/events/worker.js';
import { webhooksRoutes } from './modules/webhooks/webhooks.routes.js';
import { createWebhooksService } from './modules/webhooks/webhooks.service.js';
import { createAnalyticsService } from './modules/analytics/analytics.service.js';
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
import { openDatabase, type DatabaseHandle } from './platform/db.js';
import { installConditionalGets } from './platform/http-cache.js';
import { healthRoutes } from './platform/health.js';
import { AppError, isDatabaseUnavailable } from './platform/errors.js';
import {
  frameworkErrors,
  installErrorHandling,
  RETRY_AFTER_SECONDS,
} from './platform/http-errors.js';
import { createIdempotency } from './platform/idempotency.js';
import { installJsonBodyParser } from './platform/json-body.js';
import { loggerOptions, requestIdOf } from './platform/logging.js';
import { createMetrics, metricsRoutes } from './platform/metrics.js';
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
}

const API_VERSION = '0.1.0';
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
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // JSON only: anything else, text included, is refused with 415 instead of half-parsed.
  app.removeContentTypeParser('text/plain');
  installJsonBodyParser(app);
  installErrorHandling(app);
  installConditionalGets(app);

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
    cache,
    afterCommit: () => worker?.nudge(),
  });
  const analytics = createAnalyticsService({
    db: database.db,
    defaultCurrency: config.defaultCurrency,
    timeZone: config.analyticsTimeZone,
    cache,
  });
  const webhooks = createWebhooksService({
    db: database.db,
    cipher,
    timeoutMs: config.webhookTimeoutMs,
    allowPrivateTargets: config.webhookAllowPrivateTargets,
    maxEndpoints: config.webhookMaxEndpoints,
    recordManualAttempt: (delivery, result) =>
      recordManualAttempt(database.db, delivery.id, result),
    loadEvent: (eventId) => loadEvent(database.db, eventId),
  });
  const idempotency = createIdempotency({
    db: database.db,
    cipher,
    ttlHours: config.idempotencyKeyTtlHours,
    // Until callers authenticate, every caller shares one scope.
    scopeOf: () => 'anonymous',
  });

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
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request completed',
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Fido Transactions API',
        version: API_VERSION,
        description:
          "Record users' financial transactions and answer questions about them. Money is " +
          'exact (integer minor units), names are encrypted at rest, and writes are safe to retry ' +
          'with `Idempotency-Key`.',
      },
      tags: [
        { name: 'transactions', description: 'Create, read, update and delete transactions' },
        { name: 'analytics', description: 'Per-user figures, exact the moment a write commits' },
        { name: 'events', description: 'The audit trail and pull-based change feed' },
        {
          name: 'webhooks',
          description: 'Signed, retried, inspectable push delivery of every committed change',
        },
        { name: 'operations', description: 'Health, readiness and documentation' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get(
    '/',
    {
      schema: {
        tags: ['operations'],
        summary: 'Welcome',
        response: { 200: Type.Object({ message: Type.String() }) },
      },
    },
    async () => ({ message: 'Welcome to Fido Transactions API' }),
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, { database, cache });
  await app.register(metricsRoutes, { metrics });
  await app.register(transactionsRoutes, { transactions, idempotency });
  await app.register(analyticsRoutes, { analytics });
  await app.register(eventsRoutes, { db: database.db });
  await app.register(webhooksRoutes, { webhooks });

  if (config.worker === 'inline') {
    const handlers = new HandlerRegistry([
      cacheWarmupHandler({
        history: (userId) => transactions.history(userId, {}).catch(ignoreNotFound),
        analytics: (userId, currency) =>
          analytics.allTime(userId, { currency }).catch(ignoreNotFound),
      }),
      ...(deps.eventHandlers ?? []),
    ]);
    app.addHook('onReady', async () => {
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
