import { and, desc, eq, gte, lte, sql, type SQL } from 'drizzle-orm';
import { transactions } from '../../db/schema/index.js';
import type { Db } from '../../platform/db.js';

export type TransactionRow = typeof transactions.$inferSelect;
export type NewTransactionRow = typeof transactions.$inferInsert;
export type TransactionChanges = Partial<
  Pick<
    TransactionRow,
    | 'fullNameCiphertext'
    | 'transactionDate'
    | 'amountMinor'
    | 'transactionType'
    | 'currency'
    | 'description'
    | 'metadata'
  >
>;

export interface HistoryFilters {
  startDate?: Date | undefined;
  endDate?: Date | undefined;
  transactionType?: 'credit' | 'debit' | undefined;
  currency?: string | undefined;
}

/** The last row of the previous page: the next page starts strictly after it. */
export interface HistoryPosition {
  transactionDate: Date;
  id: string;
}

export async function insertTransaction(db: Db, row: NewTransactionRow): Promise<TransactionRow> {
  const [saved] = await db.insert(transactions).values(row).returning();
  if (!saved) throw new Error('insert returned no row');
  return saved;
}

export async function findTransactionById(
  db: Db,
  id: string,
  { forUpdate = false }: { forUpdate?: boolean } = {},
): Promise<TransactionRow | undefined> {
  const query = db.select().from(transactions).where(eq(transactions.id, id)).limit(1);
  const [row] = forUpdate ? await query.for('update') : await query;
  return row;
}

export async function updateTransaction(
  db: Db,
  current: Pick<TransactionRow, 'userId' | 'id'>,
  changes: TransactionChanges,
  updatedAt: Date,
): Promise<TransactionRow> {
  const [saved] = await db
    .update(transactions)
    .set({ ...changes, updatedAt, version: sql`${transactions.version} + 1` })
    .where(and(eq(transactions.userId, current.userId), eq(transactions.id, current.id)))
    .returning();
  if (!saved) throw new Error('update matched no row');
  return saved;
}

export async function deleteTransaction(
  db: Db,
  current: Pick<TransactionRow, 'userId' | 'id'>,
): Promise<void> {
  await db
    .delete(transactions)
    .where(and(eq(transactions.userId, current.userId), eq(transactions.id, current.id)));
}

/**
 * One page of a user's history, newest first. Keyset pagination over the history index: the
 * cost of a page does not depend on how deep it is.
 */
export async function listHistory(
  db: Db,
  userId: string,
  filters: HistoryFilters,
  after: HistoryPosition | undefined,
  limit: number,
): Promise<TransactionRow[]> {
  const conditions: SQL[] = [eq(transactions.userId, userId)];
  if (filters.startDate) conditions.push(gte(transactions.transactionDate, filters.startDate));
  if (filters.endDate) conditions.push(lte(transactions.transactionDate, filters.endDate));
  if (filters.transactionType) {
    conditions.push(eq(transactions.transactionType, filters.transactionType));
  }
  if (filters.currency) conditions.push(eq(transactions.currency, filters.currency));
  if (after) {
    conditions.push(
      sql`(${transactions.transactionDate}, ${transactions.id}) < (${after.transactionDate.toISOString()}::timestamptz, ${after.id}::uuid)`,
    );
  }
  return db
    .select()
    .from(transactions)
    .where(and(...conditions))
    .orderBy(desc(transactions.transactionDate), desc(transactions.id))
    .limit(limit);
}

export async function userHasTransactions(db: Db, userId: string): Promise<boolean> {
  const rows = await db
    .select({ one: sql<number>`1` })
    .from(transactions)
    .where(eq(transactions.userId, userId))
    .limit(1);
  return rows.length > 0;
}
