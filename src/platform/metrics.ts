import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RouteAccess } from './auth.js';
import { wholeServerScrape } from './cluster-metrics.js';
import type { DatabaseHandle } from '../db/client.js';
import { AppError } from './errors.js';

/**
 * The process's metrics, in one registry per app so tests and processes never share counters.
 * `droppedLogLines`: how many lines the app's log destination has dropped so far.
 */
export function createMetrics(
  database?: Pick<DatabaseHandle, 'poolStats'>,
  droppedLogLines?: () => number,
) {
  const registry = new Registry();
  let droppedLogLinesCounted = 0;
  collectDefaultMetrics({ register: registry, prefix: 'fido_' });
  const pool = new Gauge({
    name: 'fido_db_pool_connections',
    help: 'PostgreSQL pool connections by state (embedded PGlite has none)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const stats = database?.poolStats();
      if (!stats) return;
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
  return {
    registry,
    pool,
    httpRequests: new Histogram({
      name: 'fido_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern and status, with their latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
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
    eventsRelayed: new Counter({
      name: 'fido_events_relayed_total',
      help: 'Events moved from the outbox into deliveries by this process',
      registers: [registry],
    }),
    deliveryAttempts: new Histogram({
      name: 'fido_delivery_attempt_duration_seconds',
      help: 'Delivery attempts by consumer kind (webhook, handler) and outcome (ok, failed)',
      labelNames: ['kind', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    logLinesDropped: new Counter({
      name: 'fido_log_lines_dropped_total',
      help: 'Log lines dropped because 16 MiB were already waiting for stdout (alert on any)',
      registers: [registry],
      collect() {
        const total = droppedLogLines?.() ?? 0;
        this.inc(total - droppedLogLinesCounted);
        droppedLogLinesCounted = total;
      },
    }),
    deliveriesDead: new Counter({
      name: 'fido_deliveries_dead_total',
      help: 'Deliveries that exhausted their retry window (alert on any)',
      labelNames: ['kind'],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Public by default: the series carry route patterns and counts, never ids, names or amounts, and
 * a scraper holding an admin key would be the most privileged credential in the system.
 * METRICS_ACCESS=admin closes it for deployments that cannot keep it off the public network.
 */
export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics; access: RouteAccess }> = async (
  app,
  { metrics, access },
) => {
  // Under WEB_CONCURRENCY > 1: the sum over every HTTP process (cluster-metrics.ts).
  const wholeServer = wholeServerScrape(metrics.registry);
  app.get(
    '/metrics',
    {
      schema: { tags: ['operations'], summary: 'Prometheus metrics (text exposition format)' },
      config: { access },
    },
    async (request, reply) => {
      void reply.type(metrics.registry.contentType);
      if (!wholeServer) return metrics.registry.metrics();
      try {
        return await wholeServer();
      } catch (error) {
        // A partial sum would make counters jump: the scrape fails instead, and says why.
        request.log.warn({ err: error }, 'metrics of the whole server unavailable');
        throw new AppError('SERVICE_UNAVAILABLE', 'Metrics of every HTTP process are unavailable');
      }
    },
  );
};
