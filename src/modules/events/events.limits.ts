/*
 * Limits of the event feed's HTTP API, each named with its unit. The worker's, the relay's and the
 * JetStream relay's batch sizes and timeouts are still beside their loops (worker.ts, outbox.ts,
 * jetstream.ts).
 */

/** Events per page of `GET /api/v1/events`. */
export const EVENT_PAGE_SIZE_DEFAULT = 100;
export const EVENT_PAGE_SIZE_MAX = 1_000;
/** A feed cursor as sent, in characters (one we issue is at most 56). */
export const EVENT_CURSOR_LENGTH_MAX = 100;
