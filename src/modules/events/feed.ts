import type { EventType } from '../../db/schema/index.js';

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

export interface FeedEntry {
  position: FeedPosition;
  event: PublishedEvent;
}

const DIGITS = /^\d{1,20}$/;

/** Cursors are opaque to clients: base64url of "<tx id>.<sequence>" of the last event served. */
export function encodeFeedCursor(position: FeedPosition): string {
  return Buffer.from(`${position.txId}.${position.sequence}`).toString('base64url');
}

export function decodeFeedCursor(cursor: string): FeedPosition | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const [txId, sequence, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('.');
  if (rest.length > 0 || !txId || !sequence || !DIGITS.test(txId) || !DIGITS.test(sequence)) {
    return undefined;
  }
  // Both are bigint columns: a larger number would fail there (a 500), not here (a 422).
  if (BigInt(txId) >= 2n ** 63n || BigInt(sequence) >= 2n ** 63n) return undefined;
  return { txId, sequence };
}

export interface FeedQuery {
  after?: FeedPosition | undefined;
  userId?: string | undefined;
  type?: EventType | undefined;
  limit: number;
}
