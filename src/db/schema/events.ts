import { sql } from 'drizzle-orm';
import {
  bigint,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { timestampMs } from './transactions.js';

export const EVENT_TYPES = [
  'transaction.created',
  'transaction.updated',
  'transaction.deleted',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The transactional outbox and the audit trail: one row per committed create, update and delete,
 * written in the same database transaction as the change. Payloads never hold plaintext names.
 */
export const events = pgTable(
  'events',
  {
    sequence: bigint('sequence', { mode: 'bigint' }).generatedAlwaysAsIdentity(),
    /**
     * The writing transaction's id. Readers order by (tx_id, sequence) and stop below the oldest
     * transaction still running, so an event that commits late can never appear behind a cursor
     * that has already passed it (a plain sequence is taken at insert, not at commit).
     */
    // Kept as bigint rather than xid8: it compares, sorts and travels like any number in SQL and
    // in both drivers, and an xid8 stays below 2^63 for the life of any real server.
    txId: bigint('tx_id', { mode: 'bigint' })
      .notNull()
      .default(sql`(pg_current_xact_id()::text::bigint)`),
    id: uuid('id').notNull(),
    userId: text('user_id').notNull(),
    type: text('type', { enum: EVENT_TYPES }).notNull(),
    transactionId: uuid('transaction_id').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: timestampMs('created_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.sequence] }),
    // Unique per user, so the table can be distributed by user_id (docs/scaling.md); ids are
    // UUIDv7 and unique in practice. The plain index serves the lookups by event id alone.
    uniqueIndex('events_user_id_id_idx').on(t.userId, t.id),
    index('events_id_idx').on(t.id),
    index('events_feed_idx').on(t.txId, t.sequence),
    index('events_user_feed_idx').on(t.userId, t.txId, t.sequence),
    index('events_created_at_idx').on(t.createdAt),
    index('events_transaction_id_idx').on(t.transactionId),
  ],
);
