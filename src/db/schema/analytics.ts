import { sql } from 'drizzle-orm';
import {
  check,
  date,
  index,
  integer,
  numeric,
  pgTable,
  primaryKey,
  text,
} from 'drizzle-orm/pg-core';
import { timestampMs } from './transactions.js';

// Totals are sums of up to 15-digit amounts over any number of rows: numeric, not bigint, so no
// total can overflow. Drizzle hands them over as strings; arithmetic happens in BigInt.
const minorTotal = (name: string) =>
  numeric(name, { precision: 38, scale: 0 }).notNull().default('0');

/** Per user and currency: counts and totals, maintained in every write's database transaction. */
export const userStats = pgTable(
  'user_stats',
  {
    userId: text('user_id').notNull(),
    currency: text('currency').notNull(),
    transactionCount: integer('transaction_count').notNull(),
    creditCount: integer('credit_count').notNull(),
    debitCount: integer('debit_count').notNull(),
    creditTotalMinor: minorTotal('credit_total_minor'),
    debitTotalMinor: minorTotal('debit_total_minor'),
    updatedAt: timestampMs('updated_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.currency] }),
    check(
      'user_stats_counts_valid',
      sql`${t.transactionCount} = ${t.creditCount} + ${t.debitCount}`,
    ),
  ],
);

/** Per user, currency and calendar day (in ANALYTICS_TIMEZONE). Rows with no transactions go. */
export const userDailyStats = pgTable(
  'user_daily_stats',
  {
    userId: text('user_id').notNull(),
    currency: text('currency').notNull(),
    day: date('day', { mode: 'string' }).notNull(),
    transactionCount: integer('transaction_count').notNull(),
    creditCount: integer('credit_count').notNull(),
    debitCount: integer('debit_count').notNull(),
    creditTotalMinor: minorTotal('credit_total_minor'),
    debitTotalMinor: minorTotal('debit_total_minor'),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.currency, t.day] }),
    // The busiest day is the first entry of this index for a user and currency.
    index('user_daily_stats_busiest_idx').on(
      t.userId,
      t.currency,
      t.transactionCount.desc().nullsFirst(),
      t.day,
    ),
    check(
      'user_daily_stats_counts_valid',
      sql`${t.transactionCount} = ${t.creditCount} + ${t.debitCount}`,
    ),
  ],
);

/** Small named values background work keeps between runs (e.g. the reconciliation's cursors). */
export const jobState = pgTable('job_state', {
  name: text('name').primaryKey(),
  value: text('value').notNull(),
  updatedAt: timestampMs('updated_at').notNull().defaultNow(),
});

/** One row per scheduled tick that ran: whoever inserts it first runs the tick, nobody else. */
export const schedulerRuns = pgTable(
  'scheduler_runs',
  {
    job: text('job').notNull(),
    scheduledAt: timestampMs('scheduled_at').notNull(),
    ranAt: timestampMs('ran_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.job, t.scheduledAt] })],
);
