import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The process's metrics, in one registry per app so tests and processes never share counters. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fido_' });
  return {
    registry,
    reconciliationRuns: new Counter({
      name: 'fido_reconciliation_runs_total',
      help: 'Rollup reconciliation runs completed',
      registers: [registry],
    }),
    reconciliationUsers: new Counter({
      name: 'fido_reconciliation_users_total',
      help: 'Users whose rollups were recomputed from raw rows',
      registers: [registry],
    }),
    reconciliationDriftRows: new Counter({
      name: 'fido_reconciliation_drift_rows_total',
      help: 'Rollup rows found wrong and repaired (should stay 0)',
      registers: [registry],
    }),
    reconciliationDriftMinor: new Counter({
      name: 'fido_reconciliation_drift_amount_minor_total',
      help: 'Absolute amount, in minor units, by which repaired rollups were wrong (should stay 0)',
      registers: [registry],
    }),
    reconciliationLastDriftRows: new Gauge({
      name: 'fido_reconciliation_last_run_drift_rows',
      help: 'Rollup rows repaired by the latest reconciliation run',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, { metrics }) => {
  app.get(
    '/metrics',
    { schema: { tags: ['operations'], summary: 'Prometheus metrics (text exposition format)' } },
    async (_request, reply) => {
      void reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );
};
