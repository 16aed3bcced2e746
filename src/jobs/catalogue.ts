import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import { runReconciliation } from '../modules/analytics/reconciliation.js';
import type { Cache } from '../platform/cache.js';
import type { Db } from '../platform/db.js';
import { expireIdempotencyKeys } from '../platform/idempotency.js';
import type { Metrics } from '../platform/metrics.js';
import type { ScheduledJob } from './scheduler.js';

/** The closed list of scheduled jobs. Each is idempotent and bounded in batch size. */
export function scheduledJobs(deps: {
  config: Config;
  db: Db;
  metrics: Metrics;
  cache: Pick<Cache, 'invalidate'>;
  logger: FastifyBaseLogger;
}): ScheduledJob[] {
  const { config, db, metrics, cache, logger } = deps;
  return [
    {
      name: 'reconcile-rollups',
      pattern: config.reconcileSchedule,
      async run() {
        await runReconciliation(db, {
          timeZone: config.analyticsTimeZone,
          batchSize: config.reconcileBatchSize,
          logger,
          metrics,
          invalidate: (userId) => cache.invalidate(userId),
        });
      },
    },
    {
      name: 'expire-idempotency-keys',
      pattern: config.idempotencyExpirySchedule,
      async run() {
        const deleted = await expireIdempotencyKeys(db);
        if (deleted > 0) logger.info({ deleted }, 'expired idempotency keys deleted');
      },
    },
  ];
}
