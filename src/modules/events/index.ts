/*
 * The events module's public face: the audit trail and change feed, the outbox (a durable queue
 * of deliveries per consumer), and the worker that relays committed events to webhooks and
 * in-process handlers. Other code imports the module only from here.
 */
export { appendEvent, loadEvent, type NewEvent } from './events.repository.js';
export { eventsRoutes } from './events.routes.js';
export type { PublishedEvent } from './feed.js';
export {
  cacheWarmupHandler,
  HandlerRegistry,
  type EventHandler,
  type HandlerContext,
} from './handlers.js';
export { PARKED_UNTIL } from './outbox.repository.js';
export {
  pruneEvents,
  recordManualAttempt,
  registerHandlers,
  retireHandler,
  workerBacklog,
  type AttemptOutcome,
} from './outbox.js';
export {
  createJetStreamMetrics,
  jetStreamLag,
  startJetStreamRelay,
  type JetStreamRelay,
  type JetStreamRelayOptions,
} from './jetstream.js';
export { startWorker, type WebhookSender, type Worker } from './worker.js';
