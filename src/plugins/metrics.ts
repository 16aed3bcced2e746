import fp from 'fastify-plugin';
import { createMetrics, type Metrics } from '../platform/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The process's Prometheus registry and the series the app records. */
    metrics: Metrics;
  }
}

/** The metrics registry (`app.metrics`), including the database pool's gauges. Opens nothing. */
export const metricsPlugin = fp(
  async (app) => {
    app.decorate('metrics', createMetrics(app.database));
  },
  { name: 'metrics', fastify: '5.x', dependencies: ['database'] },
);
