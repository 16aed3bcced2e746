import { and, eq, getTableColumns, sql, type SQL } from 'drizzle-orm';
import { events, transactions } from '../../db/schema/index.js';
import { runStatement, type Db, type Statement } from '../../db/client.js';
import { bare, columnList, statementText } from '../../db/sql.js';
import {
  contributions,
  CONTRIBUTION_INPUTS,
  ROLLUP_LOCK_CLASS,
  rollupUpserts,
} from '../analytics/index.js';

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

const t = transactions;

/**
 * A create in one statement, so one round trip: the user's shared rollup lock, the row, both
 * rollup upserts and the outbox event, atomic as any single statement is. The CTEs are chained so
 * that they run in the order every writer uses: lock, row, totals, then days (rollup rows locked in
 * key order, as `applyRollups` locks them). $1 lock class, $2 user, $3 id, $4 name ciphertext,
 * $5 date, $6 amount, $7 type, $8 currency, $9 description, $10 metadata, $11 created and updated,
 * $12 the rollups' time zone, $13 event id, $14 event payload.
 */
/** Every column a new transaction row is written with, in the order its values are given. */
export const INSERT_COLUMNS = [
  t.userId,
  t.id,
  t.fullNameCiphertext,
  t.transactionDate,
  t.amountMinor,
  t.transactionType,
  t.currency,
  t.description,
  t.metadata,
  t.version,
  t.createdAt,
  t.updatedAt,
] as const;

export const CREATE_STATEMENT: Statement = {
  name: 'fido_create_transaction',
  text: statementText(sql`
with locked as materialized (
  select pg_advisory_xact_lock_shared($1::int, hashtext($2::text))
), saved as (
  insert into ${t} (${columnList(...INSERT_COLUMNS)})
  select $2::text, $3::uuid, $4::text, $5::timestamptz, $6::bigint, $7::text, $8::text, $9::text,
    $10::jsonb, 1, $11::timestamptz, $11::timestamptz
  from locked
  returning ${CONTRIBUTION_INPUTS}
), delta as (
  ${contributions(sql`saved`, sql.raw('$12::text'))}
), ${rollupUpserts(sql`delta`)}, event as (
  insert into ${events} (${columnList(events.id, events.userId, events.type, events.transactionId, events.payload)})
  select $13::uuid, ${bare(t.userId)}, 'transaction.created', $3::uuid, $14::jsonb from saved
  returning 1
)
select (select count(*) from days)::int + (select count(*) from event)::int as effects
from saved`),
};

/** What the create statement stores besides the row itself. */
export interface CreateEffects {
  /** The zone whose calendar day the daily rollup counts the transaction in. */
  timeZone: string;
  eventId: string;
  eventPayload: Record<string, unknown>;
}

/**
 * Stores a new transaction with its rollups and its `transaction.created` event (see
 * CREATE_STATEMENT), on `db`: a transaction when the caller holds one.
 */
export async function insertTransaction(
  db: Db,
  row: TransactionRow,
  effects: CreateEffects,
): Promise<void> {
  const [result] = await runStatement<{ effects: number }>(
    db,
    CREATE_STATEMENT,
    [
      ROLLUP_LOCK_CLASS,
      row.userId,
      row.id,
      row.fullNameCiphertext,
      row.transactionDate.toISOString(),
      row.amountMinor.toString(),
      row.transactionType,
      row.currency,
      row.description,
      row.metadata === null ? null : JSON.stringify(row.metadata),
      row.createdAt.toISOString(),
      effects.timeZone,
      effects.eventId,
      JSON.stringify(effects.eventPayload),
    ],
    // Outside a transaction the statement commits by itself.
    { commits: true },
  );
  // Cannot fail unless the statement itself is wrong; the row is committed by then (outside a
  // transaction), so this only makes such a bug loud instead of leaving rollups silently short.
  if (Number(result?.effects) !== 2) {
    throw new Error('the create statement did not write all its rows');
  }
}

/** Every column, as the hot reads select them: the amount as text, so no driver rounds it. */
const ROW_COLUMNS = sql.join(
  Object.values(getTableColumns(t)).map((column) =>
    column === t.amountMinor ? sql`${column}::text as ${bare(column)}` : bare(column),
  ),
  sql`, `,
);

interface StoredRow {
  user_id: string;
  id: string;
  full_name_ciphertext: string;
  transaction_date: Date | string;
  amount_minor: string;
  transaction_type: TransactionRow['transactionType'];
  currency: string;
  description: string | null;
  metadata: TransactionRow['metadata'];
  version: number;
  created_at: Date | string;
  updated_at: Date | string;
  legacy_id: string | null;
}

function fromStored(row: StoredRow): TransactionRow {
  return {
    userId: row.user_id,
    id: row.id,
    fullNameCiphertext: row.full_name_ciphertext,
    transactionDate: new Date(row.transaction_date),
    amountMinor: BigInt(row.amount_minor),
    transactionType: row.transaction_type,
    currency: row.currency,
    description: row.description,
    metadata: row.metadata,
    version: Number(row.version),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    legacyId: row.legacy_id,
  };
}

/** A read by id, the hottest read: a prepared statement (see `runStatement`). */
const FIND_BY_ID_STATEMENT: Statement = {
  name: 'fido_find_transaction',
  text: statementText(sql`select ${ROW_COLUMNS} from ${t} where ${t.id} = $1::uuid limit 1`),
};

/** A read by the old service's ObjectId (an imported row's `legacy_id`). */
const FIND_BY_LEGACY_ID_STATEMENT: Statement = {
  name: 'fido_find_transaction_by_legacy_id',
  text: statementText(sql`select ${ROW_COLUMNS} from ${t} where ${t.legacyId} = $1::text limit 1`),
};

/** Which transaction a path names: its id, or the ObjectId it had in the old service. */
export type TransactionRef = { id: string } | { legacyId: string };

/**
 * One transaction by id; `forUpdate` locks it for the rest of `db`'s transaction (the query
 * builder's path, as a transaction needs), and a plain read is the prepared statement.
 */
export async function findTransactionById(
  db: Db,
  ref: TransactionRef,
  { forUpdate = false }: { forUpdate?: boolean } = {},
): Promise<TransactionRow | undefined> {
  if (forUpdate) {
    const [row] = await db
      .select()
      .from(transactions)
      .where('id' in ref ? eq(transactions.id, ref.id) : eq(transactions.legacyId, ref.legacyId))
      .limit(1)
      .for('update');
    return row;
  }
  const [row] =
    'id' in ref
      ? await runStatement<StoredRow>(db, FIND_BY_ID_STATEMENT, [ref.id])
      : await runStatement<StoredRow>(db, FIND_BY_LEGACY_ID_STATEMENT, [ref.legacyId]);
  return row && fromStored(row);
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
 * The history statement for one combination of filters (each present filter adds a condition):
 * at most 32 texts, each a prepared statement of its own, built once.
 */
const historyStatements = new Map<number, Statement>();

function historyStatement(present: readonly boolean[]): Statement {
  const variant = present.reduce((bits, on, i) => (on ? bits | (1 << i) : bits), 0);
  let statement = historyStatements.get(variant);
  if (!statement) {
    const [start, end, type, currency, after] = present;
    let n = 0;
    const next = (type: string) => sql.raw(`$${++n}::${type}`);
    const where: SQL[] = [sql`${t.userId} = ${next('text')}`];
    if (start) where.push(sql`${t.transactionDate} >= ${next('timestamptz')}`);
    if (end) where.push(sql`${t.transactionDate} <= ${next('timestamptz')}`);
    if (type) where.push(sql`${t.transactionType} = ${next('text')}`);
    if (currency) where.push(sql`${t.currency} = ${next('text')}`);
    if (after) {
      where.push(sql`(${t.transactionDate}, ${t.id}) < (${next('timestamptz')}, ${next('uuid')})`);
    }
    statement = {
      name: `fido_history_${variant}`,
      text: statementText(sql`select ${ROW_COLUMNS} from ${t} where ${sql.join(where, sql` and `)}
  order by ${t.transactionDate} desc, ${t.id} desc limit ${next('int')}`),
    };
    historyStatements.set(variant, statement);
  }
  return statement;
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
  const present = [
    filters.startDate !== undefined,
    filters.endDate !== undefined,
    filters.transactionType !== undefined,
    filters.currency !== undefined,
    after !== undefined,
  ];
  const values = [
    userId,
    filters.startDate?.toISOString(),
    filters.endDate?.toISOString(),
    filters.transactionType,
    filters.currency,
    after?.transactionDate.toISOString(),
    after?.id,
    limit,
  ].filter((value) => value !== undefined);
  const rows = await runStatement<StoredRow>(db, historyStatement(present), values);
  return rows.map(fromStored);
}

export async function userHasTransactions(db: Db, userId: string): Promise<boolean> {
  const rows = await db
    .select({ one: sql<number>`1` })
    .from(transactions)
    .where(eq(transactions.userId, userId))
    .limit(1);
  return rows.length > 0;
}
