import { sql } from 'drizzle-orm';
import { v7 as uuidv7 } from 'uuid';
import { transactions, userDailyStats } from '../src/db/schema/index.js';
import { columnList } from '../src/db/sql.js';
import {
  contributions,
  CONTRIBUTION_INPUTS,
  rollupUpserts,
} from '../src/modules/analytics/index.js';
import type { FieldCipher } from '../src/platform/crypto.js';
import type { Db } from '../src/db/client.js';

/** Rows per INSERT: one round trip carries this many through unnest() of array parameters. */
const ROWS_PER_STATEMENT = 10_000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface BulkLoad {
  /** Each user gets `perUser` transactions. */
  userIds: readonly string[];
  perUser: number;
  /** Spread over this many days ending at `end`. */
  days: number;
  end: Date;
  currency?: string;
  /** The zone the daily rollups count in (the API's ANALYTICS_TIMEZONE). */
  timeZone?: string;
  /** Called after each statement with the rows loaded so far. */
  progress?: (loaded: number) => void;
}

/**
 * Bulk-loads transactions with real encrypted names, ROWS_PER_STATEMENT per statement, and
 * maintains the rollups in the same statement, with the same upsert clauses every write uses: the
 * database ends as if every row had come through the API (reconciliation finds no drift). Rows
 * are interleaved across users, so a user's rows spread over the table as real traffic spreads
 * them. Follow with `analyzeTables`, as autovacuum would after a load.
 */
export async function bulkLoad(db: Db, cipher: FieldCipher, load: BulkLoad): Promise<number> {
  const { userIds, perUser, days, end } = load;
  const currency = load.currency ?? 'GHS';
  const timeZone = load.timeZone ?? 'UTC';
  const total = userIds.length * perUser;
  const span = days * DAY_MS;
  for (let offset = 0; offset < total; offset += ROWS_PER_STATEMENT) {
    const size = Math.min(ROWS_PER_STATEMENT, total - offset);
    const users: string[] = [];
    const ids: string[] = [];
    const names: string[] = [];
    const dates: string[] = [];
    const amounts: string[] = [];
    const types: string[] = [];
    for (let i = 0; i < size; i += 1) {
      const n = offset + i;
      // The k-th row of its user: users take turns, k counts each user's rows.
      const k = Math.floor(n / userIds.length);
      const id = uuidv7();
      users.push(userIds[n % userIds.length]!);
      ids.push(id);
      names.push(cipher.encrypt(`Bench Person ${n % 1000}`, id));
      // Evenly spread over the span in a scrambled order (7919 is prime: a permutation of k).
      dates.push(
        new Date(
          end.getTime() - Math.floor(((k * 7919) % perUser) * (span / perUser)),
        ).toISOString(),
      );
      amounts.push(String(100 + ((n * 37) % 100_000)));
      types.push(n % 3 === 0 ? 'debit' : 'credit');
    }
    const t = transactions;
    const given = columnList(
      t.userId,
      t.id,
      t.fullNameCiphertext,
      t.transactionDate,
      t.amountMinor,
      t.transactionType,
    );
    await db.execute(sql`
      with saved as (
        insert into ${t} (${given}, ${columnList(t.currency, t.version, t.createdAt, t.updatedAt)})
        select ${given}, ${currency}, 1, now(), now()
        from unnest(${sql.param(users)}::text[], ${sql.param(ids)}::uuid[],
          ${sql.param(names)}::text[], ${sql.param(dates)}::timestamptz[],
          ${sql.param(amounts)}::bigint[], ${sql.param(types)}::text[])
          as u(${given})
        returning ${CONTRIBUTION_INPUTS}
      ), delta as (
        ${contributions(sql`saved`, sql`${timeZone}::text`)}
      ), ${rollupUpserts(sql`delta`)}
      select count(*) from days`);
    load.progress?.(offset + size);
  }
  return total;
}

/** `count` transactions for one user (see `bulkLoad`); `analyze: false` leaves the vacuum to one
 * `analyzeTables` call after seeding many users. */
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
  await bulkLoad(db, cipher, { ...options, userIds: [options.userId], perUser: options.count });
  if (options.analyze !== false) await analyzeTables(db);
}

export async function analyzeTables(db: Db): Promise<void> {
  // What autovacuum does in production after a load: statistics, and the visibility map that
  // lets range queries read edge days from the index alone.
  await db.execute(sql`vacuum analyze ${transactions}`);
  await db.execute(sql`vacuum analyze ${userDailyStats}`);
}
