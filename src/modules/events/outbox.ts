import { v7 as uuidv7 } from 'uuid';
import type { DeliveryState } from '../../db/schema/index.js';
import type { Db } from '../../db/client.js';
import { readJobState, writeJobState } from '../../db/job-state.repository.js';
import { readJetStreamPosition } from './jetstream.repository.js';
import { deleteSpentEvents, readFeedHeads } from './events.repository.js';
import { decodeFeedCursor, encodeFeedCursor, type EventHead, type FeedPosition } from './feed.js';
import {
  completeManually,
  countBacklog,
  deleteCompletedDeliveries,
  deleteEventConsumer,
  deletePendingDeliveries,
  expireOverdueDeliveries,
  holdDeliveries,
  insertAttempt,
  insertDeliveries,
  listSubscribers,
  lockPendingHeads,
  noteManualFailure,
  releaseNext,
  releaseStranded,
  recordClaimAttempts,
  tryTransactionLock,
  upsertEventConsumers,
  type AttemptRecord,
  type ClaimAttempt,
  type ClaimedDelivery,
  type NewDelivery,
  type Subscriber,
} from './outbox.repository.js';
import { INSERT_CHUNK_ROWS, ERROR_TEXT_MAX } from './events.limits.js';

/** First key of the relay's advisory lock: one relay at a time, across every process. */
const RELAY_LOCK_CLASS = 0x46_49_44_52; // "FIDR"
const RELAY_STATE_NAME = 'outbox-relay';

export const handlerConsumer = (name: string) => `handler:${name}`;

/** Records the handlers a worker runs, so every relay (in any process) fans events out to them. */
export async function registerHandlers(
  db: Db,
  handlers: readonly { name: string; types: readonly string[] }[],
): Promise<void> {
  await upsertEventConsumers(
    db,
    handlers.map((h) => ({ name: handlerConsumer(h.name), eventTypes: h.types })),
  );
}

/** Where the relay has got to in the feed, if it has started. */
async function relayedPosition(db: Db): Promise<FeedPosition | undefined> {
  const state = await readJobState(db, RELAY_STATE_NAME);
  return state === undefined ? undefined : decodeFeedCursor(state);
}

/**
 * What the worker has yet to do: committed events the relay has not fanned out, and deliveries
 * still pending (due, retrying or parked). Both zero means it has caught up with every write.
 */
export async function workerBacklog(db: Db): Promise<{ unrelayed: number; pending: number }> {
  return countBacklog(db, await relayedPosition(db));
}

/** Takes a handler out of service: it is owed nothing more, and what it was owed is dropped. */
export async function retireHandler(db: Db, name: string): Promise<number> {
  return db.transaction(async (dbTx) => {
    const consumer = handlerConsumer(name);
    await deleteEventConsumer(dbTx, consumer);
    return deletePendingDeliveries(dbTx, consumer);
  });
}

/**
 * Moves up to `batchSize` new events from the feed into per-consumer deliveries, and the relay's
 * cursor past them, in one transaction: a crash repeats the whole step or none of it, and the
 * unique (user, consumer, event) index makes a repeat harmless. Events go in feed order, so a
 * delivery's `position` orders one consumer's deliveries for one user. A delivery with an earlier
 * one still pending for its (consumer, user) is parked until that one completes.
 */
export async function relayEvents(
  db: Db,
  options: { batchSize: number; retryWindowMs: number },
): Promise<number> {
  return db.transaction(async (dbTx) => {
    if (!(await tryTransactionLock(dbTx, RELAY_LOCK_CLASS))) return 0;
    // Without payloads: the relay fans out by type, user and time; the claim reads the payload.
    const heads = await readFeedHeads(dbTx, {
      after: await relayedPosition(dbTx),
      limit: options.batchSize,
    });
    const last = heads.at(-1);
    if (!last) return 0;

    const subscribers = await listSubscribers(dbTx);
    const planned: { event: EventHead; subscriber: Subscriber; first: boolean }[] = [];
    const streams = new Map<string, { consumer: string; userId: string }>();
    for (const { event } of heads) {
      const written = Date.parse(event.created_at);
      for (const subscriber of subscribers) {
        const types = subscriber.eventTypes;
        if (types.length > 0 && !types.includes(event.type)) continue;
        if (written < subscriber.since.getTime()) continue;
        const key = streamKey(subscriber.consumer, event.user_id);
        // Only the first of a stream in this batch can be due; the database knows about earlier ones.
        planned.push({ event, subscriber, first: !streams.has(key) });
        streams.set(key, { consumer: subscriber.consumer, userId: event.user_id });
      }
    }
    const waiting = await lockStreamHeads(dbTx, [...streams.values()]);
    const rows = planned.map(({ event, subscriber, first }): NewDelivery => ({
      id: uuidv7(),
      consumer: subscriber.consumer,
      webhookId: subscriber.webhookId,
      eventId: event.id,
      eventType: event.type,
      userId: event.user_id,
      due: first && !waiting.has(streamKey(subscriber.consumer, event.user_id)),
    }));
    for (let i = 0; i < rows.length; i += INSERT_CHUNK_ROWS) {
      await insertDeliveries(dbTx, rows.slice(i, i + INSERT_CHUNK_ROWS), options.retryWindowMs);
    }
    await writeJobState(dbTx, RELAY_STATE_NAME, encodeFeedCursor(last.position));
    return heads.length;
  });
}

const streamKey = (consumer: string, userId: string) => `${consumer}\n${userId}`;

/**
 * The streams (consumer, user) that have a pending delivery, with each one's earliest locked
 * (FOR SHARE) until the relay commits. The lock is what keeps a parked delivery from being
 * stranded: the head cannot complete, and release its successor, before the successor exists.
 * A head completed while we waited is re-checked out, and its stream counts as free.
 */
async function lockStreamHeads(
  dbTx: Db,
  streams: readonly { consumer: string; userId: string }[],
): Promise<Set<string>> {
  const waiting = new Set<string>();
  for (let i = 0; i < streams.length; i += INSERT_CHUNK_ROWS) {
    const heads = await lockPendingHeads(dbTx, streams.slice(i, i + INSERT_CHUNK_ROWS));
    for (const head of heads) waiting.add(streamKey(head.consumer, head.userId));
  }
  return waiting;
}

/** What one attempt came to: a webhook's send result, or a handler's in the same terms. */
export interface AttemptOutcome {
  ok: boolean;
  /** The response status, or null when none arrived (refused, timed out, blocked). */
  status: number | null;
  latencyMs: number;
  error: string | null;
}

/** The attempt as it is logged: its error text cut to ERROR_TEXT_MAX. */
const recordOf = (outcome: AttemptOutcome): AttemptRecord => ({
  status: outcome.status,
  latencyMs: outcome.latencyMs,
  error: outcome.error === null ? null : outcome.error.slice(0, ERROR_TEXT_MAX),
});

/** An automatic attempt to record: the claim it was made on, and what it came to. */
export interface FinishedAttempt {
  delivery: Pick<ClaimedDelivery, 'id' | 'attempt'> & { userId: string };
  outcome: AttemptOutcome;
  /** When to try again if it failed. */
  retryDelayMs: number;
}

export type RecordedState = DeliveryState | 'superseded' | 'gone';

/** Attempts recorded per transaction, at most: far below PostgreSQL's bind-parameter limit. */
export const RECORD_BATCH_MAX = INSERT_CHUNK_ROWS;

/**
 * Records automatic attempts (at most RECORD_BATCH_MAX) in one statement, whatever their number. Success completes a delivery; a failure schedules the next attempt
 * `retryDelayMs` later (never past `retry_until`), or marks it dead once a failure happens at or
 * after `retry_until`. Only a claim that is still current may change the state: a worker that
 * outlived its lease just adds its attempt to the log (`superseded`). A completed delivery
 * releases the next one of its (consumer, user). `gone`: the delivery was deleted (with its
 * webhook) meanwhile. The states come back in the order of `attempts`.
 */
export async function recordAttempts(
  db: Db,
  attempts: readonly FinishedAttempt[],
): Promise<RecordedState[]> {
  if (attempts.length > RECORD_BATCH_MAX) {
    throw new Error(`At most ${RECORD_BATCH_MAX} attempts are recorded at once`);
  }
  if (attempts.length === 0) return [];
  const recorded = await recordClaimAttempts(
    db,
    attempts.map(({ delivery, outcome, retryDelayMs }): ClaimAttempt => ({
      ...recordOf(outcome),
      deliveryId: delivery.id,
      userId: delivery.userId,
      attempt: delivery.attempt,
      ok: outcome.ok,
      retryDelayMs,
    })),
  );
  return recorded.map(({ held, state }) => (held ? (state ?? 'superseded') : 'gone'));
}

/**
 * Records a manual attempt: success completes the delivery, failure changes nothing but the log.
 * False when the delivery no longer exists (its webhook was deleted while the attempt was made).
 */
export async function recordManualAttempt(
  db: Db,
  deliveryId: string,
  outcome: AttemptOutcome,
): Promise<boolean> {
  return db.transaction(async (dbTx) => {
    if (!(await holdDeliveries(dbTx, [deliveryId])).has(deliveryId)) return false;
    const record = recordOf(outcome);
    await insertAttempt(dbTx, deliveryId, record, true);
    if (!outcome.ok) {
      await noteManualFailure(dbTx, deliveryId, record);
      return true;
    }
    const completed = await completeManually(dbTx, deliveryId, record.status);
    if (completed?.was === 'pending') await releaseNext(dbTx, [completed]);
    return true;
  });
}

/**
 * Upkeep, in batches of `batchSize` until `deadline`:
 * - pending deliveries an hour past their retry window (their webhook was paused, or no worker
 *   runs their handler) are marked dead, so they stop holding back their user's later ones;
 * - completed deliveries (with their attempts) past the retention window are deleted;
 * - events past the retention window that the relay has passed and no consumer still owes are
 *   deleted (with JetStream on, only once they are in the stream).
 */
export async function pruneEvents(
  db: Db,
  options: {
    retentionDays: number;
    batchSize: number;
    deadline: number;
    /** NATS_URL is set: events not yet in the JetStream stream are kept. */
    jetstream?: boolean;
  },
): Promise<{ expired: number; deliveries: number; events: number }> {
  const { retentionDays, batchSize } = options;
  const batches = async (batch: () => Promise<number>): Promise<number> => {
    let total = 0;
    while (Date.now() < options.deadline) {
      const n = await batch();
      total += n;
      if (n < batchSize) break;
    }
    return total;
  };
  const expired = await batches(() => expireOverdueDeliveries(db, batchSize));
  if (expired > 0) await releaseStranded(db, batchSize);
  const deliveries = await batches(() => deleteCompletedDeliveries(db, retentionDays, batchSize));
  const relayed = await relayedPosition(db);
  // With JetStream on, an event stays until the stream has it too (its relay may be behind).
  const published = options.jetstream ? await readJetStreamPosition(db) : undefined;
  const events =
    relayed && (!options.jetstream || published)
      ? await batches(() => deleteSpentEvents(db, { retentionDays, relayed, published, batchSize }))
      : 0;
  return { expired, deliveries, events };
}
