import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

// Millisecond precision everywhere: PGlite's clock has it, a JS Date has it, and keyset cursors
// compare these values, so PostgreSQL must not keep digits a cursor cannot carry.
const timestampMs = (name: string) => timestamp(name, { withTimezone: true, precision: 3 });

export const transactions = pgTable(
  'transactions',
  {
    userId: text('user_id').notNull(),
    id: uuid('id').notNull(),
    fullNameCiphertext: text('full_name_ciphertext').notNull(),
    transactionDate: timestampMs('transaction_date').notNull(),
    amountMinor: bigint('amount_minor', { mode: 'bigint' }).notNull(),
    transactionType: text('transaction_type', { enum: ['credit', 'debit'] }).notNull(),
    currency: text('currency').notNull(),
    description: text('description'),
    metadata: jsonb('metadata').$type<Record<string, string>>(),
    version: integer('version').notNull().default(1),
    createdAt: timestampMs('created_at').notNull().defaultNow(),
    updatedAt: timestampMs('updated_at').notNull().defaultNow(),
    /** The old service's ObjectId (24 lower-case hex digits) of an imported row; null otherwise. */
    legacyId: text('legacy_id'),
  },
  (t) => [
    // user_id leads the key so the table can be distributed by user (Citus) without a rewrite.
    primaryKey({ columns: [t.userId, t.id] }),
    index('transactions_id_idx').on(t.id),
    // DESC NULLS FIRST is what a plain `ORDER BY ... DESC` asks for, so history reads walk the index.
    index('transactions_history_idx').on(
      t.userId,
      t.transactionDate.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    // First and last transaction dates per currency, all-time or in a range, are the two ends
    // of this index: O(log n) whatever the number of rows. Type and amount ride along so the
    // partial edge days of a range query are read from the index alone (no heap fetches).
    index('transactions_user_currency_date_idx').on(
      t.userId,
      t.currency,
      t.transactionDate,
      t.transactionType,
      t.amountMinor,
    ),
    // Reads by an old id, and what makes an import idempotent: one row per ObjectId and user. The
    // user rides along so the index stays valid when the table is distributed by user_id.
    uniqueIndex('transactions_legacy_id_idx')
      .on(t.legacyId, t.userId)
      .where(sql`${t.legacyId} is not null`),
    check('transactions_legacy_id_format', sql`${t.legacyId} ~ '^[0-9a-f]{24}$'`),
    check('transactions_amount_minor_positive', sql`${t.amountMinor} > 0`),
    check('transactions_type_valid', sql`${t.transactionType} in ('credit', 'debit')`),
    check('transactions_currency_format', sql`${t.currency} ~ '^[A-Z]{3}$'`),
  ],
);

export { timestampMs };
