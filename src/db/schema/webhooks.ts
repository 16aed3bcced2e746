import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  foreignKey,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { timestampMs } from './transactions.js';

/**
 * A subscriber's endpoint. The signing secret is encrypted at rest (the webhook id is its
 * associated data); during a rotation's overlap window the previous secret signs too.
 */
export const webhooks = pgTable('webhooks', {
  id: uuid('id').primaryKey(),
  url: text('url').notNull(),
  description: text('description'),
  /** Event types delivered; empty means every type. */
  eventTypes: text('event_types')
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  active: boolean('active').notNull().default(true),
  secretCiphertext: text('secret_ciphertext').notNull(),
  previousSecretCiphertext: text('previous_secret_ciphertext'),
  previousSecretExpiresAt: timestampMs('previous_secret_expires_at'),
  createdAt: timestampMs('created_at').notNull().defaultNow(),
  updatedAt: timestampMs('updated_at').notNull().defaultNow(),
});

/**
 * The in-process handlers some worker runs. The relay owes every event to each of them, whichever
 * process relays it; a handler taken out of service is retired with the CLI.
 */
export const eventConsumers = pgTable('event_consumers', {
  name: text('name').primaryKey(),
  eventTypes: text('event_types')
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  registeredAt: timestampMs('registered_at').notNull().defaultNow(),
  lastSeenAt: timestampMs('last_seen_at').notNull().defaultNow(),
});

export const DELIVERY_STATES = ['pending', 'succeeded', 'dead'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/**
 * One event owed to one consumer: a webhook (`webhook_id` set) or an in-process handler
 * (`consumer` = `handler:<name>`). The relay writes them in feed order, so `position` orders a
 * consumer's deliveries for one user; only the earliest pending one per (consumer, user) may run.
 * A claimed delivery stays pending with `next_attempt_at` pushed past its lease, so a worker that
 * dies mid-delivery only delays it. A delivery queued behind an earlier pending one of the same
 * (consumer, user) is parked (`next_attempt_at` far in the future) until that one completes, so
 * finding due work never wades through waiting rows.
 */
export const deliveries = pgTable(
  'deliveries',
  {
    id: uuid('id').notNull(),
    position: bigint('position', { mode: 'bigint' }).generatedAlwaysAsIdentity(),
    consumer: text('consumer').notNull(),
    webhookId: uuid('webhook_id').references(() => webhooks.id, { onDelete: 'cascade' }),
    eventId: uuid('event_id').notNull(),
    eventType: text('event_type').notNull(),
    userId: text('user_id').notNull(),
    state: text('state', { enum: DELIVERY_STATES }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestampMs('next_attempt_at').notNull().defaultNow(),
    /** Retries stop, and the delivery is dead, once an attempt fails at or after this instant. */
    retryUntil: timestampMs('retry_until').notNull(),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    createdAt: timestampMs('created_at').notNull().defaultNow(),
    updatedAt: timestampMs('updated_at').notNull().defaultNow(),
    completedAt: timestampMs('completed_at'),
  },
  // user_id leads every key, so the table can be distributed by it (docs/scaling.md). `position`
  // is unique by its identity, not by an index: every read of it goes through (consumer, user_id,
  // position) or (webhook_id, position). The plain index on id serves lookups by delivery id.
  (t) => [
    primaryKey({ columns: [t.userId, t.id] }),
    index('deliveries_id_idx').on(t.id),
    uniqueIndex('deliveries_user_consumer_event_idx').on(t.userId, t.consumer, t.eventId),
    index('deliveries_due_idx')
      .on(t.nextAttemptAt)
      .where(sql`${t.state} = 'pending'`),
    index('deliveries_order_idx')
      .on(t.consumer, t.userId, t.position)
      .where(sql`${t.state} = 'pending'`),
    index('deliveries_webhook_idx').on(t.webhookId, t.position),
    index('deliveries_completed_at_idx').on(t.completedAt),
    index('deliveries_pending_event_idx')
      .on(t.eventId)
      .where(sql`${t.state} = 'pending'`),
  ],
);

/** Every attempt at a delivery, automatic or by hand: what the deliveries endpoint shows. */
export const deliveryAttempts = pgTable(
  'delivery_attempts',
  {
    id: bigint('id', { mode: 'bigint' }).generatedAlwaysAsIdentity(),
    /** The delivery's user: co-locates an attempt with its delivery when distributed by user_id. */
    userId: text('user_id').notNull(),
    deliveryId: uuid('delivery_id').notNull(),
    attemptedAt: timestampMs('attempted_at').notNull().defaultNow(),
    statusCode: integer('status_code'),
    latencyMs: integer('latency_ms').notNull(),
    error: text('error'),
    manual: boolean('manual').notNull().default(false),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.id] }),
    foreignKey({
      name: 'delivery_attempts_delivery_fk',
      columns: [t.userId, t.deliveryId],
      foreignColumns: [deliveries.userId, deliveries.id],
    }).onDelete('cascade'),
    index('delivery_attempts_delivery_idx').on(t.deliveryId, t.id),
  ],
);
