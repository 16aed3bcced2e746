import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../../db/client.js';
import { isDatabaseUnavailable } from '../../platform/errors.js';
import { serializeError } from '../../platform/logging.js';
import type { Metrics } from '../../platform/metrics.js';
import { outageLog } from '../../platform/outage.js';
import type { HandlerRegistry } from './handlers.js';
import { startLoop } from './loop.js';
import {
  handlerConsumer,
  RECORD_BATCH_MAX,
  recordAttempts,
  registerHandlers,
  relayEvents,
  type AttemptOutcome,
  type FinishedAttempt,
  type RecordedState,
} from './outbox.js';
import { claimDeliveries, releaseStranded, type ClaimedDelivery } from './outbox.repository.js';
import type { PublishedEvent } from './feed.js';
import {
  RELAY_BATCH_SIZE,
  RELAY_INTERVAL_MIN_MS,
  SWEEP_INTERVAL_MS,
  SWEEP_BATCH_SIZE,
} from './events.limits.js';

/**
 * How the worker reaches webhooks (the webhooks module): find one, take one from the row its
 * claim read (JSON, column names as keys), and send it an event.
 */
export interface WebhookSender<Webhook = unknown> {
  get(id: string): Promise<Webhook>;
  fromRow(row: Record<string, unknown>): Webhook;
  send(webhook: Webhook, deliveryId: string, event: PublishedEvent): Promise<AttemptOutcome>;
}

export interface WorkerOptions<Webhook = unknown> {
  db: Db;
  handlers: HandlerRegistry;
  webhooks: WebhookSender<Webhook>;
  pollMs: number;
  concurrency: number;
  /** Bounds one attempt: a webhook call, or a handler run (aborted through its signal). */
  attemptTimeoutMs: number;
  retryWindowMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  logger: Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;
  /** Bounds how long stop() waits for attempts in flight. */
  shutdownTimeoutMs: number;
  metrics?: Pick<Metrics, 'eventsRelayed' | 'deliveryAttempts' | 'deliveriesDead'>;
}

export interface Worker {
  /** Look for work now instead of at the next poll (called after a write commits). */
  nudge(): void;
  stop(): Promise<void>;
}

/**
 * How long a claim lasts before another worker may take the delivery over: the attempt's bound
 * and half again, plus a second for recording the outcome.
 */
const leaseMs = (attemptTimeoutMs: number) => Math.round(attemptTimeoutMs * 1.5) + 1_000;

/**
 * Exponential backoff with equal jitter: the n-th retry waits between half and all of
 * base·2^(n-1), capped. Jitter spreads retries of many deliveries that failed together.
 */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * The outbox worker: relays committed events into per-consumer deliveries and runs them, at most
 * `concurrency` at a time, each bounded by `attemptTimeoutMs`. Polls every `pollMs`, and sooner
 * when nudged or when an attempt finishes. Every state change is in the database, so any number
 * of workers (inline in API processes, or `npm run worker`) can share the work, and one that
 * dies loses nothing: its leased deliveries are attempted again when their lease runs out.
 */
export function startWorker<Webhook>(options: WorkerOptions<Webhook>): Worker {
  const { db, handlers, logger } = options;
  // The handlers this worker runs, by the consumer name their deliveries carry.
  const byConsumer = new Map(handlers.all().map((h) => [handlerConsumer(h.name), h]));
  const handlerConsumers = [...byConsumer.keys()];
  let registered = false;
  let sweptAt = Date.now();
  const inFlight = new Set<Promise<void>>();
  const outage = outageLog(
    logger,
    {},
    {
      down: 'worker cannot reach the database; retrying',
      up: 'worker reached the database again',
    },
  );

  /** A write committed (or the poll came round) since the last relay step. */
  let relayDue = true;
  let relayedAt = 0;
  let relayTimer: NodeJS.Timeout | undefined;
  /** The next relay step's delay: none once RELAY_INTERVAL_MIN_MS have passed since the last. */
  const relayDelayMs = () => Math.max(0, relayedAt + RELAY_INTERVAL_MIN_MS - Date.now());

  /** A write committed: a relay step soon, but not one per write. */
  function nudgeRelay(): void {
    relayDue = true;
    if (relayTimer) return;
    const delayMs = relayDelayMs();
    if (delayMs === 0) {
      loop.nudge();
      return;
    }
    relayTimer = setTimeout(() => {
      relayTimer = undefined;
      loop.nudge();
    }, delayMs);
    relayTimer.unref();
  }

  /**
   * Registers, sweeps now and then, relays a batch when one is due and claims what fits; true if
   * more waits. A pass started by finished attempts only claims.
   */
  async function step(): Promise<boolean> {
    let more = false;
    if (!registered) {
      await registerHandlers(
        db,
        handlers.all().map((h) => ({ name: h.name, types: h.types ?? [] })),
      );
      registered = true;
    }
    if (Date.now() - sweptAt >= SWEEP_INTERVAL_MS) {
      await releaseStranded(db, SWEEP_BATCH_SIZE);
      sweptAt = Date.now();
    }
    if (Date.now() - relayedAt >= options.pollMs) relayDue = true;
    if (relayDue && relayDelayMs() === 0) {
      relayDue = false;
      relayedAt = Date.now();
      const relayed = await relayEvents(db, {
        batchSize: RELAY_BATCH_SIZE,
        retryWindowMs: options.retryWindowMs,
      });
      options.metrics?.eventsRelayed.inc(relayed);
      // A full batch: more are waiting, relayed at once (a backlog, not a trickle of writes).
      if (relayed === RELAY_BATCH_SIZE) {
        relayDue = true;
        relayedAt = 0;
        more = true;
      }
    } else if (relayDue) {
      nudgeRelay();
    }
    const free = options.concurrency - inFlight.size;
    if (free > 0) {
      const claimed = await claimDeliveries(db, {
        handlerConsumers,
        limit: free,
        leaseMs: leaseMs(options.attemptTimeoutMs),
      });
      // Each webhook is decoded once per claim, not once per delivery.
      const webhooks = new Map<string, Promise<Webhook>>();
      for (const delivery of claimed) launch(delivery, webhooks);
      if (claimed.length === free) more = true;
    }
    return more;
  }

  /** Finished attempts waiting to be recorded, and the recording under way. */
  const finished: {
    attempt: FinishedAttempt;
    resolve: (state: RecordedState) => void;
    reject: (error: unknown) => void;
  }[] = [];
  let recording: Promise<void> | undefined;

  /**
   * Records a finished attempt together with the others that finish meanwhile: one transaction
   * per batch (at most RECORD_BATCH_MAX), not per attempt.
   */
  function record(attempt: FinishedAttempt): Promise<RecordedState> {
    return new Promise((resolve, reject) => {
      finished.push({ attempt, resolve, reject });
      recording ??= recordFinished();
    });
  }

  async function recordFinished(): Promise<void> {
    // Attempts that finish in the same turn of the event loop share the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (finished.length > 0) {
      const batch = finished.splice(0, RECORD_BATCH_MAX);
      try {
        const states = await recordAttempts(
          db,
          batch.map((f) => f.attempt),
        );
        batch.forEach((f, i) => f.resolve(states[i]!));
      } catch (error) {
        for (const f of batch) f.reject(error);
      }
    }
    // In the same synchronous stretch as the loop's last check: nothing is left unrecorded.
    recording = undefined;
  }

  function launch(delivery: ClaimedDelivery, webhooks: Map<string, Promise<Webhook>>): void {
    const work = attempt(delivery, webhooks)
      .catch((error: unknown): AttemptOutcome => ({
        ok: false,
        status: null,
        latencyMs: 0,
        error: `Could not attempt: ${error instanceof Error ? error.message : String(error)}`,
      }))
      .then(async (outcome) => {
        const kind = delivery.webhookId ? 'webhook' : 'handler';
        options.metrics?.deliveryAttempts.observe(
          { kind, outcome: outcome.ok ? 'ok' : 'failed' },
          outcome.latencyMs / 1000,
        );
        if (!outcome.ok) {
          logger.warn(
            {
              delivery_id: delivery.id,
              consumer: delivery.consumer,
              event_id: delivery.event.id,
              attempt: delivery.attempt,
              status: outcome.status,
              error: outcome.error,
            },
            'delivery attempt failed',
          );
        }
        const state = await record({
          delivery: { id: delivery.id, attempt: delivery.attempt, userId: delivery.event.user_id },
          outcome,
          retryDelayMs: retryDelayMs(delivery.attempt, options.backoffBaseMs, options.backoffMaxMs),
        });
        if (state === 'gone') {
          // Its webhook was deleted during the attempt: nothing is left to retry or record.
          logger.info(
            { delivery_id: delivery.id, consumer: delivery.consumer, event_id: delivery.event.id },
            'delivery dropped: its webhook was deleted',
          );
        } else if (state === 'dead') {
          options.metrics?.deliveriesDead.inc({ kind });
          logger.error(
            { delivery_id: delivery.id, consumer: delivery.consumer, event_id: delivery.event.id },
            'delivery dead: retries exhausted',
          );
        }
      })
      .catch((error: unknown) => {
        // The lease runs out and the delivery is attempted again: nothing is lost.
        logger.error({ err: error, delivery_id: delivery.id }, 'could not record a delivery');
      })
      .finally(() => {
        inFlight.delete(work);
        loop.nudge();
      });
    inFlight.add(work);
  }

  async function attempt(
    delivery: ClaimedDelivery,
    webhooks: Map<string, Promise<Webhook>>,
  ): Promise<AttemptOutcome> {
    const { webhookId } = delivery;
    if (webhookId) {
      let webhook = webhooks.get(webhookId);
      if (!webhook) {
        const row = delivery.webhook;
        // The claim read it; only a webhook deleted as it was claimed is missing.
        webhook = row
          ? Promise.resolve(options.webhooks.fromRow(row))
          : options.webhooks.get(webhookId);
        webhooks.set(webhookId, webhook);
      }
      return options.webhooks.send(await webhook, delivery.id, delivery.event);
    }
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const handler = byConsumer.get(delivery.consumer);
    if (!handler) {
      return { ok: false, status: null, latencyMs: 0, error: 'No such handler in this process' };
    }
    const signal = AbortSignal.timeout(options.attemptTimeoutMs);
    try {
      await Promise.race([
        handler.handle(delivery.event, { attempt: delivery.attempt, signal }),
        new Promise((_, reject) => {
          signal.addEventListener('abort', () =>
            reject(new Error(`Timed out after ${options.attemptTimeoutMs} ms`)),
          );
        }),
      ]);
      return { ok: true, status: null, latencyMs: elapsed(), error: null };
    } catch (error) {
      return {
        ok: false,
        status: null,
        latencyMs: elapsed(),
        // Scrubbed like a log line: a failed query's message would carry its parameters.
        error: serializeError(error).message,
      };
    }
  }

  const loop = startLoop({
    pollMs: options.pollMs,
    step,
    mayContinue: () => inFlight.size < options.concurrency,
    succeeded: () => outage.succeeded(),
    failed(error) {
      if (isDatabaseUnavailable(error)) outage.failed(error);
      else logger.error({ err: error }, 'worker step failed');
      return false;
    },
  });
  logger.info(
    {
      handlers: handlers.all().map((h) => h.name),
      concurrency: options.concurrency,
      poll_ms: options.pollMs,
    },
    'event worker started',
  );

  return {
    nudge: nudgeRelay,
    async stop() {
      clearTimeout(relayTimer);
      await loop.stop();
      if (inFlight.size > 0) {
        let bound: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled(inFlight),
          new Promise((resolve) => {
            bound = setTimeout(resolve, options.shutdownTimeoutMs);
          }),
        ]);
        clearTimeout(bound);
      }
    },
  };
}
