import { bigint, index, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
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
    id: uuid('id').notNull(),
    userId: text('user_id').notNull(),
    type: text('type', { enum: EVENT_TYPES }).notNull(),
    transactionId: uuid('transaction_id').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: timestampMs('created_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.sequence] }),
    index('events_sequence_idx').on(t.sequence),
    index('events_transaction_id_idx').on(t.transactionId),
  ],
);
