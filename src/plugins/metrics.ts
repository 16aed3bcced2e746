import fp from 'fastify-plugin';
import { createMetrics, type Metrics } from '../platform/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The process's Prometheus registry and the series the app records. */
    metrics: Metrics;
  }
}

/**
 * The metrics registry (`app.metrics`), including the database pool's gauges and the log lines
 * the app's own log destination dropped (`droppedLogLines`). Opens nothing.
 */
export const metricsPlugin = fp<{ droppedLogLines?: (() => number) | undefined }>(
  async (app, options) => {
    app.decorate('metrics', createMetrics(app.database, options.droppedLogLines));
  },
  { name: 'metrics', fastify: '5.x', dependencies: ['database'] },
);
