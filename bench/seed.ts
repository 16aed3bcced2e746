import { sql } from 'drizzle-orm';
import { v7 as uuidv7 } from 'uuid';
import {
  CONTRIBUTION_COLUMNS,
  DAYS_UPSERT,
  TOTALS_UPSERT,
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
    await db.execute(sql`
      with saved as (
        insert into transactions (user_id, id, full_name_ciphertext, transaction_date,
          amount_minor, transaction_type, currency, version, created_at, updated_at)
        select u.user_id, u.id, u.name, u.date, u.amount, u.type, ${currency}, 1, now(), now()
        from unnest(${sql.param(users)}::text[], ${sql.param(ids)}::uuid[],
          ${sql.param(names)}::text[], ${sql.param(dates)}::timestamptz[],
          ${sql.param(amounts)}::bigint[], ${sql.param(types)}::text[])
          as u(user_id, id, name, date, amount, type)
        returning user_id, currency, transaction_date, transaction_type, amount_minor
      ), delta as (
        select ${sql.raw(CONTRIBUTION_COLUMNS)} from saved
      ), totals as (
        ${sql.raw(TOTALS_UPSERT.insert)}
        select user_id, currency, sum(n), sum(cn), sum(dn), sum(ct), sum(dt), now() from delta
        group by 1, 2 order by 1, 2
        ${sql.raw(TOTALS_UPSERT.onConflict)}
        returning 1
      )
      ${sql.raw(DAYS_UPSERT.insert)}
      select user_id, currency, (ts at time zone ${timeZone})::date, sum(n), sum(cn), sum(dn),
        sum(ct), sum(dt)
      from delta where (select count(*) from totals) > 0
      group by 1, 2, 3 order by 1, 2, 3
      ${sql.raw(DAYS_UPSERT.onConflict)}`);
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
  await db.execute(sql`vacuum analyze transactions`);
  await db.execute(sql`vacuum analyze user_daily_stats`);
}
