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

/**
 * Feed cursors: base64url of "<tx id>.<sequence>" of the last event served (src/domain/cursor.ts).
 * The outbox relay keeps its own place in job_state in this format too.
 */
const feedCursor = cursorCodec<FeedPosition>({
  txId: cursorFields.int64,
  sequence: cursorFields.int64,
});

export const encodeFeedCursor = feedCursor.encode;
export const decodeFeedCursor = feedCursor.decode;

export interface FeedQuery {
  after?: FeedPosition | undefined;
  userId?: string | undefined;
  type?: EventType | undefined;
  limit: number;
}
