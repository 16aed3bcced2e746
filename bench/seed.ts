import { sql } from 'drizzle-orm';
import { v7 as uuidv7 } from 'uuid';
import { reconcileUser } from '../src/modules/analytics/reconciliation.js';
import type { FieldCipher } from '../src/platform/crypto.js';
import type { Db } from '../src/platform/db.js';

/** Rows per INSERT: one round trip carries this many through unnest() of array parameters. */
const ROWS_PER_STATEMENT = 10_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Bulk-loads `count` transactions for one user, spread over `days` days ending at `end`, with
 * real encrypted names, then builds the user's rollups from the raw rows (the reconciliation's
 * recompute), as if every row had come through the API. `analyze: false` leaves the vacuum to
 * one `analyzeTables` call after seeding many users.
 */
export async function seedUser(
  db: Db,
  cipher: FieldCipher,
  options: {
    userId: string;
    count: number;
    days: number;
    end: Date;
    currency?: string;
    analyze?: boolean;
  },
): Promise<void> {
  const { userId, count, days, end } = options;
  const currency = options.currency ?? 'GHS';
  const span = days * DAY_MS;
  for (let offset = 0; offset < count; offset += ROWS_PER_STATEMENT) {
    const size = Math.min(ROWS_PER_STATEMENT, count - offset);
    const ids: string[] = [];
    const names: string[] = [];
    const dates: string[] = [];
    const amounts: string[] = [];
    const types: string[] = [];
    for (let i = 0; i < size; i += 1) {
      const n = offset + i;
      const id = uuidv7();
      ids.push(id);
      names.push(cipher.encrypt(`Bench Person ${n % 1000}`, id));
      // Evenly spread over the span in a scrambled order (7919 is prime: a permutation of n).
      dates.push(
        new Date(end.getTime() - Math.floor(((n * 7919) % count) * (span / count))).toISOString(),
      );
      amounts.push(String(100 + ((n * 37) % 100_000)));
      types.push(n % 3 === 0 ? 'debit' : 'credit');
    }
    await db.execute(sql`
      insert into transactions (user_id, id, full_name_ciphertext, transaction_date, amount_minor,
        transaction_type, currency, version, created_at, updated_at)
      select ${userId}, u.id, u.name, u.date, u.amount, u.type, ${currency}, 1, now(), now()
      from unnest(${sql.param(ids)}::uuid[], ${sql.param(names)}::text[],
        ${sql.param(dates)}::timestamptz[], ${sql.param(amounts)}::bigint[],
        ${sql.param(types)}::text[]) as u(id, name, date, amount, type)`);
  }
  await reconcileUser(db, userId, 'UTC');
  if (options.analyze !== false) await analyzeTables(db);
}

export async function analyzeTables(db: Db): Promise<void> {
  // What autovacuum does in production after a load: statistics, and the visibility map that
  // lets range queries read edge days from the index alone.
  await db.execute(sql`vacuum analyze transactions`);
  await db.execute(sql`vacuum analyze user_daily_stats`);
}
