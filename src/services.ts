import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { createAnalyticsService } from './modules/analytics/index.js';
import { createApiKeysService } from './modules/api-keys/index.js';
import { createTransactionsService } from './modules/transactions/index.js';
import { createWebhooksService } from './modules/webhooks/index.js';
import { callerIdentity } from './platform/auth.js';
import { createIdempotency } from './platform/idempotency.js';

/** The modules' services, over the platform singletons the plugins before them decorated. */
export function createServices(app: FastifyInstance, config: Config) {
  const { database, cache, cipher, reads } = app;
  const db = database.db;
  return {
    transactions: createTransactionsService({
      db,
      cipher,
      defaultCurrency: config.defaultCurrency,
      analyticsTimeZone: config.analyticsTimeZone,
      pageSizeMax: config.pageSizeMax,
      cache,
      reads,
      afterCommit: () => {
        app.eventWorker?.nudge();
        app.jetstream?.nudge();
      },
    }),
    analytics: createAnalyticsService({
      db,
      defaultCurrency: config.defaultCurrency,
      timeZone: config.analyticsTimeZone,
      cache,
      reads,
    }),
    webhooks: createWebhooksService({
      db,
      cipher,
      timeoutMs: config.webhookTimeoutMs,
      allowPrivateTargets: config.webhookAllowPrivateTargets,
      maxEndpoints: config.webhookMaxEndpoints,
    }),
    idempotency: createIdempotency({
      db,
      cipher,
      ttlHours: config.idempotencyKeyTtlHours,
      // Keys of different callers never meet: a replay only ever returns the caller's own answer.
      scopeOf: (request) => callerIdentity(request.principal),
    }),
    apiKeys: createApiKeysService({ db }),
  };
}

export type Services = ReturnType<typeof createServices>;
