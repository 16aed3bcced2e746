import { and, asc, count, eq, gte, sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { events, transactions } from '../../db/schema/index.js';
import { bare, columnList } from '../../db/sql.js';
import {
  contributions,
  CONTRIBUTION_INPUTS,
  lockUsersRollups,
  rollupUpserts,
} from '../analytics/index.js';
import type { TransactionRow } from '../transactions/index.js';

const t = transactions;

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
  rows: readonly TransactionRow[],
  options: { timeZone: string; events?: readonly ImportEvent[] },
): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const users = [...new Set(rows.map((row) => row.userId))].sort();
  const column = <T>(pick: (row: TransactionRow) => T) => sql.param(rows.map(pick));
  const rowEvents = options.events ?? [];
  return db.transaction(async (dbTx) => {
    await lockUsersRollups(dbTx, users);
    // The rows arrive as one array parameter per column, in this order.
    const stored = [
      [t.userId, column((r) => r.userId), sql`text[]`],
      [t.id, column((r) => r.id), sql`uuid[]`],
      [t.fullNameCiphertext, column((r) => r.fullNameCiphertext), sql`text[]`],
      [t.transactionDate, column((r) => r.transactionDate.toISOString()), sql`timestamptz[]`],
      [t.amountMinor, column((r) => r.amountMinor.toString()), sql`bigint[]`],
      [t.transactionType, column((r) => r.transactionType), sql`text[]`],
      [t.currency, column((r) => r.currency), sql`text[]`],
      [t.description, column((r) => r.description), sql`text[]`],
      [
        t.metadata,
        column((r) => (r.metadata === null ? null : JSON.stringify(r.metadata))),
        sql`jsonb[]`,
      ],
      [t.version, column((r) => r.version), sql`int[]`],
      [t.createdAt, column((r) => r.createdAt.toISOString()), sql`timestamptz[]`],
      [t.updatedAt, column((r) => r.updatedAt.toISOString()), sql`timestamptz[]`],
      [t.legacyId, column((r) => r.legacyId), sql`text[]`],
    ] as const;
    const storedColumns = columnList(...stored.map(([c]) => c));
    const arrays = sql.join(
      stored.map(([, values, type]) => sql`${values}::${type}`),
      sql`, `,
    );
    const inserted = await queryRows<{ id: string }>(
      dbTx,
      sql`
      with saved as (
        insert into ${t} (${storedColumns})
        select ${storedColumns} from unnest(${arrays}) as u(${storedColumns})
        on conflict do nothing
        returning ${bare(t.id)}, ${CONTRIBUTION_INPUTS}
      ), delta as (
        ${contributions(sql`saved`, sql`${options.timeZone}::text`)}
      ), ${rollupUpserts(sql`delta`)}, event as (
        insert into ${events} (${columnList(events.id, events.userId, events.type, events.transactionId, events.payload)})
        select e.id, saved.${bare(t.userId)}, 'transaction.created', saved.${bare(t.id)}, e.payload
        from saved join unnest(${sql.param(rowEvents.map((e) => e.id))}::uuid[],
          ${sql.param(rowEvents.map((e) => e.transactionId))}::uuid[],
          ${sql.param(rowEvents.map((e) => JSON.stringify(e.payload)))}::jsonb[])
          as e(id, transaction_id, payload) on e.transaction_id = saved.${bare(t.id)}
        order by saved.${bare(t.transactionDate)}, saved.${bare(t.id)}
        returning 1
      )
      select ${bare(t.id)}::text as id from saved`,
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
  const rows = await db
    .select({ legacyId: t.legacyId, userId: t.userId })
    .from(t)
    .where(sql`${t.legacyId} = any(${sql.param(legacyIds)}::text[])`);
  return new Map(rows.map((row) => [row.legacyId ?? '', row.userId]));
}

export interface ExportFilter {
  userId?: string | undefined;
  since?: Date | undefined;
}

function exportConditions(filter: ExportFilter): SQL[] {
  const conditions: SQL[] = [];
  if (filter.userId !== undefined) conditions.push(eq(t.userId, filter.userId));
  if (filter.since !== undefined) conditions.push(gte(t.transactionDate, filter.since));
  return conditions;
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
): Promise<TransactionRow[]> {
  const conditions = exportConditions(filter);
  if (after !== undefined) {
    conditions.push(sql`(${t.userId}, ${t.id}) > (${after.userId}::text, ${after.id}::uuid)`);
  }
  return db
    .select()
    .from(t)
    .where(and(...conditions))
    .orderBy(asc(t.userId), asc(t.id))
    .limit(limit);
}

/** How many rows the export will write (for its progress display). */
export async function exportCount(db: Db, filter: ExportFilter): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(t)
    .where(and(...exportConditions(filter)));
  return Number(row?.n ?? 0);
}
