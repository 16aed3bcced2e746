import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import {
  CONTRIBUTION_COLUMNS,
  DAYS_UPSERT,
  ROLLUP_LOCK_CLASS,
  TOTALS_UPSERT,
} from '../analytics/index.js';

/** A row as the import stores it: the name already encrypted under the current key ring. */
export interface StoredImportRow {
  id: string;
  legacyId: string | null;
  userId: string;
  fullNameCiphertext: string;
  transactionDate: Date;
  amountMinor: bigint;
  transactionType: 'credit' | 'debit';
  currency: string;
  description: string | null;
  metadata: Record<string, string> | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** The `transaction.created` event of a row, when the import emits events. */
export interface ImportEvent {
  id: string;
  transactionId: string;
  payload: Record<string, unknown>;
}

/**
 * Stores a batch in one statement, as the bulk loader does: the rows (each array parameter a
 * column, through unnest), the rollups (the same contribution and upsert clauses every write
 * uses) and, when given, their events. A row already stored (same id, or same ObjectId and user)
 * is skipped and contributes nothing, so a batch can be sent again after a crash and the rollups
 * stay exact. Before the statement, the batch's users' rollup locks are taken shared (as
 * every writer takes them), so a reconciliation never sees the batch half-applied. Returns the ids
 * of the rows it stored.
 */
export async function insertImportBatch(
  db: Db,
  rows: readonly StoredImportRow[],
  options: { timeZone: string; events?: readonly ImportEvent[] },
): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const users = [...new Set(rows.map((row) => row.userId))].sort();
  const column = <T>(pick: (row: StoredImportRow) => T) => sql.param(rows.map(pick));
  const events = options.events ?? [];
  return db.transaction(async (dbTx) => {
    await dbTx.execute(sql`
      select pg_advisory_xact_lock_shared(${ROLLUP_LOCK_CLASS}::int, hashtext(u))
      from unnest(${sql.param(users)}::text[]) as u order by hashtext(u), u`);
    const inserted = await queryRows<{ id: string }>(
      dbTx,
      sql`
      with saved as (
        insert into transactions (user_id, id, full_name_ciphertext, transaction_date,
          amount_minor, transaction_type, currency, description, metadata, version, created_at,
          updated_at, legacy_id)
        select u.user_id, u.id, u.name, u.date, u.amount, u.type, u.currency, u.description,
          u.metadata, u.version, u.created_at, u.updated_at, u.legacy_id
        from unnest(${column((r) => r.userId)}::text[], ${column((r) => r.id)}::uuid[],
          ${column((r) => r.fullNameCiphertext)}::text[],
          ${column((r) => r.transactionDate.toISOString())}::timestamptz[],
          ${column((r) => r.amountMinor.toString())}::bigint[],
          ${column((r) => r.transactionType)}::text[], ${column((r) => r.currency)}::text[],
          ${column((r) => r.description)}::text[],
          ${column((r) => (r.metadata === null ? null : JSON.stringify(r.metadata)))}::jsonb[],
          ${column((r) => r.version)}::int[],
          ${column((r) => r.createdAt.toISOString())}::timestamptz[],
          ${column((r) => r.updatedAt.toISOString())}::timestamptz[],
          ${column((r) => r.legacyId)}::text[])
          as u(user_id, id, name, date, amount, type, currency, description, metadata, version,
            created_at, updated_at, legacy_id)
        on conflict do nothing
        returning id, user_id, currency, transaction_date, transaction_type, amount_minor
      ), delta as (
        select ${sql.raw(CONTRIBUTION_COLUMNS)} from saved
      ), totals as (
        ${sql.raw(TOTALS_UPSERT.insert)}
        select user_id, currency, sum(n), sum(cn), sum(dn), sum(ct), sum(dt), now() from delta
        group by 1, 2 order by 1, 2
        ${sql.raw(TOTALS_UPSERT.onConflict)}
        returning 1
      ), days as (
        ${sql.raw(DAYS_UPSERT.insert)}
        select user_id, currency, (ts at time zone ${options.timeZone}::text)::date, sum(n),
          sum(cn), sum(dn), sum(ct), sum(dt)
        from delta where (select count(*) from totals) > 0
        group by 1, 2, 3 order by 1, 2, 3
        ${sql.raw(DAYS_UPSERT.onConflict)}
        returning 1
      ), event as (
        insert into events (id, user_id, type, transaction_id, payload)
        select e.id, saved.user_id, 'transaction.created', saved.id, e.payload
        from saved join unnest(${sql.param(events.map((e) => e.id))}::uuid[],
          ${sql.param(events.map((e) => e.transactionId))}::uuid[],
          ${sql.param(events.map((e) => JSON.stringify(e.payload)))}::jsonb[])
          as e(id, transaction_id, payload) on e.transaction_id = saved.id
        order by saved.transaction_date, saved.id
        returning 1
      )
      select id::text as id from saved`,
    );
    return new Set(inserted.map((row) => row.id));
  });
}

/** The users that already hold each of these old ObjectIds. */
export async function ownersOfLegacyIds(
  db: Db,
  legacyIds: readonly string[],
): Promise<Map<string, string>> {
  if (legacyIds.length === 0) return new Map();
  const rows = await queryRows<{ legacy_id: string; user_id: string }>(
    db,
    sql`select legacy_id, user_id from transactions
      where legacy_id = any(${sql.param(legacyIds)}::text[])`,
  );
  return new Map(rows.map((row) => [row.legacy_id, row.user_id]));
}

/** A row as the export reads it. */
export interface ExportedRow {
  user_id: string;
  id: string;
  legacy_id: string | null;
  full_name_ciphertext: string;
  transaction_date: Date | string;
  amount_minor: string;
  transaction_type: 'credit' | 'debit';
  currency: string;
  description: string | null;
  metadata: Record<string, string> | null;
  version: number;
  created_at: Date | string;
  updated_at: Date | string;
}

export interface ExportFilter {
  userId?: string | undefined;
  since?: Date | undefined;
}

/**
 * One page of the export in primary-key order (user, id), after `after`: keyset pagination, so
 * every page costs the same however far the export has got.
 */
export async function exportPage(
  db: Db,
  filter: ExportFilter,
  after: { userId: string; id: string } | undefined,
  limit: number,
): Promise<ExportedRow[]> {
  const conditions = [sql`true`];
  if (filter.userId !== undefined) conditions.push(sql`user_id = ${filter.userId}`);
  if (filter.since !== undefined) {
    conditions.push(sql`transaction_date >= ${filter.since.toISOString()}::timestamptz`);
  }
  if (after !== undefined) {
    conditions.push(sql`(user_id, id) > (${after.userId}::text, ${after.id}::uuid)`);
  }
  return queryRows<ExportedRow>(
    db,
    sql`select user_id, id::text as id, legacy_id, full_name_ciphertext, transaction_date,
      amount_minor::text as amount_minor, transaction_type, currency, description, metadata,
      version, created_at, updated_at
    from transactions where ${sql.join(conditions, sql` and `)}
    order by user_id, id limit ${limit}`,
  );
}

/** How many rows the export will write (for its progress display). */
export async function exportCount(db: Db, filter: ExportFilter): Promise<number> {
  const conditions = [sql`true`];
  if (filter.userId !== undefined) conditions.push(sql`user_id = ${filter.userId}`);
  if (filter.since !== undefined) {
    conditions.push(sql`transaction_date >= ${filter.since.toISOString()}::timestamptz`);
  }
  const [row] = await queryRows<{ n: string | number }>(
    db,
    sql`select count(*) as n from transactions where ${sql.join(conditions, sql` and `)}`,
  );
  return Number(row?.n ?? 0);
}
