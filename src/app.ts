import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { analyticsRoutes } from './modules/analytics/index.js';
import { apiKeysRoutes } from './modules/api-keys/index.js';
import {
  eventsRoutes,
  type EventHandler,
  type JetStreamRelayOptions,
} from './modules/events/index.js';
import { transactionsRoutes } from './modules/transactions/index.js';
import { webhooksRoutes } from './modules/webhooks/index.js';
import type { CacheStore } from './platform/cache.js';
import type { KeyRing } from './platform/crypto.js';
import type { DatabaseHandle } from './db/client.js';
import { healthRoutes } from './platform/health.js';
import { installConditionalGets } from './platform/http-cache.js';
import {
  clientErrorHandler,
  frameworkErrors,
  installErrorHandling,
} from './platform/http-errors.js';
import { installJsonBodyParser } from './platform/json-body.js';
import {
  loggerOptions,
  openLogDestination,
  requestIdOf,
  type LogDestination,
} from './platform/logging.js';
import { metricsRoutes } from './platform/metrics.js';
import type { RateLimitStore } from './platform/rate-limit.js';
import type { PositionStore } from './platform/read-replicas.js';
import { installSecurityHeaders } from './platform/security-headers.js';
import { validatorCompiler } from './platform/validation.js';
import { accessControlPlugin } from './plugins/access-control.js';
import { cryptoPlugin } from './plugins/crypto.js';
import { databasePlugin } from './plugins/database.js';
import { eventWorkerPlugin } from './plugins/event-worker.js';
import { jetStreamPlugin } from './plugins/jetstream.js';
import { metricsPlugin } from './plugins/metrics.js';
import { openApiPlugin } from './plugins/openapi.js';
import { readReplicasPlugin } from './plugins/read-replicas.js';
import { redisPlugin } from './plugins/redis.js';
import { redisConnectionPlugin } from './plugins/redis-connection.js';
import { requestLifecyclePlugin } from './plugins/request-lifecycle.js';
import { schedulerPlugin } from './plugins/scheduler.js';
import { createServices } from './services.js';

export { AuthSetupError } from './plugins/access-control.js';
export { loadKeyRing } from './plugins/crypto.js';

export interface AppDeps {
  /** An already-open database (tests share one per file); otherwise opened from config. */
  database?: DatabaseHandle;
  /** Apply migrations before serving (start-up does; tests migrate once per file). */
  migrate?: boolean;
  /** Logs to this logger; otherwise the app opens its own log destination, closed with it. */
  logger?: FastifyBaseLogger;
  /** Without `logger`: the file the app's log lines go to instead of stdout (tests read it). */
  logFile?: string;
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
  /** Overrides for the JetStream relay (tests: a crash point, a smaller batch). */
  jetStreamRelay?: Pick<JetStreamRelayOptions, 'afterPublish' | 'batchSize'>;
}

/** How long one plugin may take to start before start-up fails as hung. */
const PLUGIN_START_TIMEOUT_MS = 120_000;

/** Fastify itself: limits, logging and the request id, from config. */
function createServer(config: Config, deps: AppDeps, logs: LogDestination | undefined) {
  const app = Fastify({
    ...(logs
      ? { logger: { ...loggerOptions(config.logLevel), stream: logs.stream } }
      : { loggerInstance: deps.logger }),
    genReqId: requestIdOf,
    // One lean line per request (the request-lifecycle plugin) instead of Fastify's two.
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      disableRequestLogging: true,
    }),
    // Plugins bound their own start-up waits (the database's: 30 s for a server still coming up);
    // Fastify's 10 s default cut that wait short. This only catches a plugin that hangs.
    pluginTimeout: PLUGIN_START_TIMEOUT_MS,
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs,
    trustProxy: config.trustProxy,
    // Fastify's own closing answer is not in our error shape; the request-lifecycle plugin's is.
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
    // A JSON API loads nothing; Swagger UI sets its own policy on /docs.
    // Exactly the documented policy: without useDefaults: false helmet adds its whole default set.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
  });
  return app;
}

/**
 * The one composition root: config and dependencies in, a ready Fastify instance out. Plugins in
 * the order they depend on each other; each closes what it opened, in reverse order, also when a
 * later one fails to start (then the whole app is closed before the error is rethrown).
 */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logs = deps.logger ? undefined : openLogDestination(deps.logFile);
  const app = createServer(config, deps, logs);
  // The first onClose hook runs last: every line logged while the app closes is written.
  if (logs) app.addHook('onClose', logs.close);
  try {
    await compose(app, config, deps, logs);
    await app.ready();
  } catch (error) {
    await app.close().catch((closeError: unknown) => {
      app.log.error({ err: closeError }, 'closing after a failed start-up failed');
    });
    throw error;
  }
  return app;
}

async function compose(
  app: FastifyInstance,
  config: Config,
  deps: AppDeps,
  logs: LogDestination | undefined,
): Promise<void> {
  const serving = (deps.role ?? 'api') === 'api';
  await app.register(databasePlugin, { config, database: deps.database, migrate: deps.migrate });
  await app.register(metricsPlugin, { droppedLogLines: logs?.droppedLines });
  // Before everything that uses Redis: it closes after them.
  await app.register(redisConnectionPlugin, { config });
  await app.register(readReplicasPlugin, { config, positionStore: deps.positionStore });
  const { cacheStore, rateLimitStore } = deps;
  await app.register(redisPlugin, { config, serving, cacheStore, rateLimitStore });
  await app.register(cryptoPlugin, { config, keyRing: deps.keyRing });
  const services = createServices(app, config);
  // After the database and Redis: on close it drains the requests in flight before they close.
  await app.register(requestLifecyclePlugin, { shutdownTimeoutMs: config.shutdownTimeoutMs });
  // Before any route: a route registered from here on without config.access stops the build.
  await app.register(accessControlPlugin, { config, apiKeys: services.apiKeys, serving });
  if (serving) await app.register(openApiPlugin);
  const { natsUrl } = config;
  if (natsUrl) {
    await app.register(jetStreamPlugin, {
      config: { ...config, natsUrl },
      relay: config.worker === 'inline' || !serving,
      overrides: deps.jetStreamRelay,
    });
  }

  await app.register(healthRoutes, {
    database: app.database,
    cache: app.cache,
    replicas: app.reads,
    auth: async () => ((await app.isOpenMode()) ? 'open' : 'required'),
    announceOpen: serving && config.nodeEnv === 'development',
    jetstream: app.jetstream,
  });
  await app.register(metricsRoutes, {
    metrics: app.metrics,
    access: config.metricsAccess === 'admin' ? { scope: 'admin' } : 'public',
  });
  if (serving) {
    const { transactions, idempotency, apiKeys, analytics, webhooks } = services;
    await app.register(transactionsRoutes, { transactions, idempotency });
    await app.register(apiKeysRoutes, { apiKeys });
    await app.register(analyticsRoutes, { analytics });
    await app.register(eventsRoutes, { db: app.database.db });
    await app.register(webhooksRoutes, { webhooks });
  }

  if (config.worker === 'inline' || !serving) {
    const eventHandlers = deps.eventHandlers ?? [];
    await app.register(eventWorkerPlugin, { config, ...services, eventHandlers });
  }
  if (config.scheduler === 'on') await app.register(schedulerPlugin, { config });
}
