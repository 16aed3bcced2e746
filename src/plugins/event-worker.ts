import fp from 'fastify-plugin';
import { Gauge } from 'prom-client';
import type { Config } from '../config.js';
import type { AnalyticsService } from '../modules/analytics/index.js';
import {
  cacheWarmupHandler,
  HandlerRegistry,
  type EventHandler,
  registerHandlers,
  retireHandler,
  startWorker,
  workerBacklog,
  type Worker,
} from '../modules/events/index.js';
import type { TransactionsService } from '../modules/transactions/index.js';
import type { WebhooksService } from '../modules/webhooks/index.js';
import { AppError } from '../platform/errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The event worker, when this process runs it: nudged after a write commits. */
    eventWorker?: Pick<Worker, 'nudge'>;
  }
}

export interface EventWorkerPluginOptions {
  config: Config;
  transactions: TransactionsService;
  analytics: AnalyticsService;
  webhooks: WebhooksService;
  /** In-process consumers of committed events, run beside the built-in cache warm-up if on. */
  eventHandlers: readonly EventHandler[];
}

/** A warm-up for a user whose last transaction is gone finds nothing to cache; that is fine. */
function ignoreNotFound(error: unknown): void {
  if (error instanceof AppError && error.status === 404) return;
  throw error;
}

/**
 * The event worker (`app.eventWorker`): relays committed events to webhooks and in-process
 * handlers. Started once the app is ready; stopped before the database closes (preClose), so
 * attempts in flight record their outcome first.
 */
export const eventWorkerPlugin = fp<EventWorkerPluginOptions>(
  async (app, { config, transactions, analytics, webhooks, eventHandlers }) => {
    const db = app.database.db;
    const warmup = cacheWarmupHandler({
      history: (userId) => transactions.history(userId, {}).catch(ignoreNotFound),
      analytics: (userId, currency) =>
        analytics.allTime(userId, { currency }).catch(ignoreNotFound),
    });
    const handlers = new HandlerRegistry([
      ...(config.cacheWarmup === 'on' ? [warmup] : []),
      ...eventHandlers,
    ]);
    let worker: Worker | undefined;
    app.decorate('eventWorker', { nudge: () => worker?.nudge() });
    // Read at each scrape: a backlog that only grows means the worker cannot keep up.
    new Gauge({
      name: 'fido_worker_backlog',
      help: 'Work the event worker has yet to do: committed events not yet relayed, deliveries pending',
      labelNames: ['kind'],
      registers: [app.metrics.registry],
      async collect() {
        try {
          const backlog = await workerBacklog(db);
          this.set({ kind: 'unrelayed_events' }, backlog.unrelayed);
          this.set({ kind: 'pending_deliveries' }, backlog.pending);
        } catch {
          // The database is down: /readyz says so; the scrape keeps the last figures.
        }
      },
    });
    app.addHook('onReady', async () => {
      // Off, the built-in warm-up is owed nothing: a database that ran it before (it was on by
      // default) would otherwise keep a delivery row per event for a handler nobody runs.
      if (config.cacheWarmup === 'off') {
        await retireHandler(db, warmup.name).catch((error: unknown) => {
          app.log.warn({ err: error }, 'cache warm-up not retired yet; retried at the next start');
        });
      }
      // Recorded before the app is ready, so every event written from then on is owed to them.
      // If the database is not there yet, the worker records them at its first step instead.
      await registerHandlers(
        db,
        handlers.all().map((h) => ({ name: h.name, types: h.types ?? [] })),
      ).catch((error: unknown) => {
        app.log.warn({ err: error }, 'event handlers not recorded yet; the worker will retry');
      });
      worker = startWorker({
        db,
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
        metrics: app.metrics,
      });
    });
    app.addHook('preClose', async () => {
      await worker?.stop();
    });
  },
  { name: 'event-worker', fastify: '5.x', dependencies: ['database', 'metrics'] },
);
