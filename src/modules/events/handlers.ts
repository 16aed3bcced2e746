import type { EventType } from '../../db/schema/index.js';
import type { PublishedEvent } from './feed.js';

export interface HandlerContext {
  /** 1 for the first attempt at this event. */
  attempt: number;
  /** Aborted when the attempt's time is up; long work should stop when it fires. */
  signal: AbortSignal;
}

/**
 * An in-process consumer of committed events: the extension point for what a lender runs on each
 * change (statistics side effects, alerts, a credit-score recalculation). Delivery is at least
 * once and in order per user; a throw is retried with backoff like a failed webhook, and never
 * holds back other users' events. Handlers must therefore be idempotent: dedupe on `event.id`.
 */
export interface EventHandler {
  /** Stable name: deliveries are recorded under it, so renaming a handler starts it afresh. */
  readonly name: string;
  /** The event types it wants; all when omitted. */
  readonly types?: readonly EventType[];
  handle(event: PublishedEvent, context: HandlerContext): Promise<void>;
}

const HANDLER_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The handlers one process runs, by name. */
export class HandlerRegistry {
  readonly #handlers = new Map<string, EventHandler>();

  constructor(handlers: readonly EventHandler[] = []) {
    for (const handler of handlers) this.register(handler);
  }

  register(handler: EventHandler): void {
    if (!HANDLER_NAME.test(handler.name)) {
      throw new Error(`Event handler name "${handler.name}" must match ${HANDLER_NAME}`);
    }
    if (this.#handlers.has(handler.name)) {
      throw new Error(`Event handler "${handler.name}" is registered twice`);
    }
    this.#handlers.set(handler.name, handler);
  }

  get(name: string): EventHandler | undefined {
    return this.#handlers.get(name);
  }

  all(): EventHandler[] {
    return [...this.#handlers.values()];
  }
}

/**
 * Built in: after a user's transactions change, compute their first history page and their
 * all-time analytics in the changed currency, so the next read is a cache hit. Reads only;
 * running twice is harmless.
 */
export function cacheWarmupHandler(warm: {
  history(userId: string): Promise<unknown>;
  analytics(userId: string, currency: string): Promise<unknown>;
}): EventHandler {
  return {
    name: 'cache-warmup',
    async handle(event) {
      const transaction = event.data.transaction as { currency?: unknown } | undefined;
      await warm.history(event.user_id);
      if (typeof transaction?.currency === 'string') {
        await warm.analytics(event.user_id, transaction.currency);
      }
    },
  };
}
