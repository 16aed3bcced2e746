import { sql } from 'drizzle-orm';
import {
  bigint,
  customType,
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
 * A 64-bit transaction id (`xid8`), read as text: it only ever travels inside cursors and is
 * compared by the database, never by JavaScript.
 */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => 'xid8' });

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
    txId: xid8('tx_id')
      .notNull()
      .default(sql`pg_current_xact_id()`),
    id: uuid('id').notNull(),
    userId: text('user_id').notNull(),
    type: text('type', { enum: EVENT_TYPES }).notNull(),
    transactionId: uuid('transaction_id').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: timestampMs('created_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.sequence] }),
    uniqueIndex('events_id_idx').on(t.id),
    index('events_feed_idx').on(t.txId, t.sequence),
    index('events_user_feed_idx').on(t.userId, t.txId, t.sequence),
    index('events_created_at_idx').on(t.createdAt),
    index('events_transaction_id_idx').on(t.transactionId),
  ],
);
