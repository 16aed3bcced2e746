/*
 * Limits of the events module, each named with its unit: the feed's HTTP API, the worker and the
 * outbox relay, and the JetStream relay.
 */

/** Events per page of `GET /api/v1/events`. */
export const EVENT_PAGE_SIZE_DEFAULT = 100;
export const EVENT_PAGE_SIZE_MAX = 1_000;
/** A feed cursor as sent, in characters (one we issue is at most 56). */
export const EVENT_CURSOR_LENGTH_MAX = 100;

/** Events moved from the feed into deliveries per relay step. */
export const RELAY_BATCH_SIZE = 200;
/**
 * Relay steps start at most this often when writes nudge the worker: a step costs the same
 * handful of statements for one event as for 200, and under a sustained write load one per write
 * cost the process as much as the writes did. A write's event waits this much longer, at most.
 */
export const RELAY_INTERVAL_MIN_MS = 25;
/** How often parked deliveries whose predecessor completed unnoticed are released, and how many. */
export const SWEEP_INTERVAL_MS = 60_000;
export const SWEEP_BATCH_SIZE = 1_000;

/**
 * Rows per statement when the relay inserts deliveries or locks streams: far below PostgreSQL's
 * bind-parameter limit. PGlite 0.5 failed ("ReleaseBuffer") on a share-lock of a few hundred
 * streams followed by an insert of a few hundred rows in one transaction, and not at this size.
 */
export const INSERT_CHUNK_ROWS = 100;
/** Longest error text kept per attempt: enough to diagnose, bounded so the log stays small. */
export const ERROR_TEXT_MAX = 500;

/** Events read from the feed and published per step. */
export const JETSTREAM_BATCH_SIZE = 500;
/** Publishes awaiting their acknowledgement at once: a window, so a batch is pipelined. */
export const JETSTREAM_IN_FLIGHT_MAX = 128;
/** How long one publish waits for JetStream's acknowledgement. */
export const JETSTREAM_PUBLISH_TIMEOUT_MS = 5_000;
export const JETSTREAM_CONNECT_TIMEOUT_MS = 2_000;
/** Between reconnection attempts once connected, and between connection attempts before. */
export const JETSTREAM_RECONNECT_WAIT_MS = 1_000;
/** Deduplication window of a stream the relay creates (JetStream's default). */
export const JETSTREAM_DUPLICATE_WINDOW_MS = 120_000;
/** The lag is counted up to this many events; a larger backlog reads as this number. */
export const LAG_COUNT_CAP = 1_000_000;
