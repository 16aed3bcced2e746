import { sql } from 'drizzle-orm';
import { check, index, pgTable, text } from 'drizzle-orm/pg-core';
import { timestampMs } from './transactions.js';

/**
 * Service API keys. The secret is never stored: only its SHA-256, looked up by the key's id (the
 * id travels in the key itself, `fido_<id>_<secret>`), so a stolen table lets no one in.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    scopes: text('scopes').array().notNull(),
    secretHash: text('secret_hash').notNull(),
    createdAt: timestampMs('created_at').notNull().defaultNow(),
    expiresAt: timestampMs('expires_at'),
    revokedAt: timestampMs('revoked_at'),
    lastUsedAt: timestampMs('last_used_at'),
  },
  (t) => [
    check('api_keys_scopes_not_empty', sql`cardinality(${t.scopes}) > 0`),
    index('api_keys_created_at_idx').on(t.createdAt, t.id),
  ],
);
