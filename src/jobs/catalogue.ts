import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import { runReconciliation } from '../modules/analytics/index.js';
import { pruneEvents } from '../modules/events/index.js';
import type { Cache } from '../platform/cache.js';
import type { FieldCipher } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import { expireIdempotencyKeys } from '../platform/idempotency.js';
import { rotateKeys } from '../platform/key-rotation.js';
import type { Metrics } from '../platform/metrics.js';
import type { ScheduledJob } from './scheduler.js';

/** Rows deleted per statement by the pruning job: short locks, small WAL bursts. */
const PRUNE_BATCH_SIZE = 1_000;
/** A job that could run long (pruning, re-encryption) stops after this and resumes next time. */
const JOB_TIME_BUDGET_MS = 60_000;

/** The closed list of scheduled jobs. Each is idempotent and bounded in batch size. */
export function scheduledJobs(deps: {
  config: Config;
  db: Db;
  metrics: Metrics;
  cache: Pick<Cache, 'invalidate'>;
  cipher: FieldCipher;
  logger: FastifyBaseLogger;
}): ScheduledJob[] {
  const { config, db, metrics, cache, cipher, logger } = deps;
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
    {
      name: 'prune-events',
      pattern: config.pruneSchedule,
      async run() {
        const pruned = await pruneEvents(db, {
          retentionDays: config.eventRetentionDays,
          batchSize: PRUNE_BATCH_SIZE,
          deadline: Date.now() + JOB_TIME_BUDGET_MS,
          jetstream: config.natsUrl !== undefined,
        });
        if (pruned.deliveries + pruned.events > 0) logger.info(pruned, 'old events pruned');
      },
    },
    {
      // Progress is the data (values still on a retired key), so a rotation cut short by a
      // restart or by this job's time budget carries on at the next run.
      name: 'rotate-keys',
      pattern: config.keyRotationSchedule,
      async run() {
        const result = await rotateKeys(db, cipher, {
          signal: AbortSignal.timeout(JOB_TIME_BUDGET_MS),
        });
        if (result.reencrypted + result.failed > 0) {
          logger.info(result, 'values re-encrypted under the active key');
        }
      },
    },
  ];
}
