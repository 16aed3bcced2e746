import type { EventType } from '../../db/schema/index.js';
import { cursorCodec, cursorFields } from '../../domain/cursor.js';

/** A position in the feed: the writing transaction's id, then the event's sequence. */
export interface FeedPosition {
  txId: string;
  sequence: string;
}

/** An event as consumers see it: the feed, webhook bodies and in-process handlers alike. */
export interface PublishedEvent {
  id: string;
  type: EventType;
  user_id: string;
  transaction_id: string;
  created_at: string;
  /** The transaction as the API shows it, without `full_name`; `previous` for an update. */
  data: EventData;
}

export interface EventData {
  transaction: Record<string, unknown>;
  previous?: Record<string, unknown>;
}

/** An event without its payload: what the relay fans out by (type, user, time). */
export type EventHead = Omit<PublishedEvent, 'data'>;

export interface FeedEntry<Event = PublishedEvent> {
  position: FeedPosition;
  event: Event;
}

/** A feed entry without the payload, as the outbox relay reads the feed. */
export type FeedHead = FeedEntry<EventHead>;

/** A feed position's fields, in cursor order (src/domain/cursor.ts). */
const FEED_POSITION_FIELDS = { txId: cursorFields.int64, sequence: cursorFields.int64 };

/**
 * Feed cursors: base64url of "<tx id>.<sequence>" of the last event served (src/domain/cursor.ts).
 * The outbox relay keeps its own place in job_state in this format too.
 */
const feedCursor = cursorCodec<FeedPosition>(FEED_POSITION_FIELDS);

export const encodeFeedCursor = feedCursor.encode;
export const decodeFeedCursor = feedCursor.decode;

/**
 * The JetStream relay's saved position in job_state: "<tx id>.<sequence>" unarmoured, the format
 * it has always been stored in (its save statement compares the two fields in SQL).
 */
const jetStreamPosition = cursorCodec<FeedPosition>(FEED_POSITION_FIELDS, { armour: 'none' });

export const encodeJetStreamPosition = jetStreamPosition.encode;
export const decodeJetStreamPosition = jetStreamPosition.decode;

export interface FeedQuery {
  after?: FeedPosition | undefined;
  userId?: string | undefined;
  type?: EventType | undefined;
  limit: number;
}
