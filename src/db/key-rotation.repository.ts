import { and, asc, getTableName, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { idempotencyAssociatedData, secretAssociatedData } from '../domain/associated-data.js';
import { queryRows, type Db } from './client.js';
import { idempotencyKeys, transactions, webhooks } from './schema/index.js';
import { bare } from './sql.js';

/** An encrypted column and the primary key that walks its table, by schema objects. */
export interface EncryptedColumnRef {
  /** The encrypted column; its table is the one rotated. */
  column: PgColumn;
  /** The primary key, in order: batches walk it. */
  keys: readonly PgColumn[];
}

/** A column holding FieldCipher values, and how to find each value's associated data. */
export interface EncryptedColumn extends EncryptedColumnRef {
  associatedData(keys: readonly string[]): string;
}

/** Every encrypted column the service writes. A new one must be listed here to rotate. */
export const ENCRYPTED_COLUMNS: readonly EncryptedColumn[] = [
  {
    keys: [transactions.userId, transactions.id],
    column: transactions.fullNameCiphertext,
    associatedData: ([, id]) => id ?? '',
  },
  {
    keys: [idempotencyKeys.scope, idempotencyKeys.key],
    column: idempotencyKeys.responseBody,
    associatedData: ([scope, key]) => idempotencyAssociatedData(scope ?? '', key ?? ''),
  },
  {
    keys: [webhooks.id],
    column: webhooks.secretCiphertext,
    associatedData: ([id]) => secretAssociatedData(id ?? ''),
  },
  {
    keys: [webhooks.id],
    column: webhooks.previousSecretCiphertext,
    associatedData: ([id]) => secretAssociatedData(id ?? ''),
  },
];

/** A stored value with its row's key (each key value as text). */
export interface StoredValue {
  keys: string[];
  value: string;
}

/** `table.column`, as logs name an encrypted column. */
export function encryptedColumnName({ column }: EncryptedColumnRef): string {
  return `${getTableName(column.table)}.${column.name}`;
}

/**
 * Up to `limit` values of `target` not under `prefix` (the active key's), in key order, after the
 * row whose key is `after`.
 */
export async function listValuesNotUnder(
  db: Db,
  target: EncryptedColumnRef,
  prefix: string,
  after: readonly string[] | undefined,
  limit: number,
): Promise<StoredValue[]> {
  // starts_with, not LIKE: key ids may contain '_', which LIKE reads as a wildcard.
  const conditions: SQL[] = [sql`not starts_with(${target.column}, ${prefix})`];
  if (after) conditions.push(sql`(${keyList(target)}) > (${typedValues(target, after)})`);
  const rows = await queryRows<Record<string, unknown>>(
    db,
    sql`select ${sql.join(
      target.keys.map((key, i) => sql`${key}::text as ${keyAlias(i)}`),
      sql`, `,
    )}, ${target.column} as value
    from ${tableOf(target)}
    where ${and(...conditions)}
    order by ${sql.join(
      target.keys.map((key) => asc(key)),
      sql`, `,
    )}
    limit ${limit}`,
  );
  return rows.map((row) => ({
    keys: target.keys.map((_, i) => String(row[`k${i}`])),
    value: String(row.value),
  }));
}

/**
 * Swaps values in one statement (atomic without an explicit transaction). A value that changed
 * since it was read (a concurrent write) is left alone: the newer one is already on the active key.
 * Returns the number of values swapped.
 */
export async function replaceValues(
  db: Db,
  target: EncryptedColumnRef,
  replacements: readonly (StoredValue & { next: string })[],
): Promise<number> {
  if (replacements.length === 0) return 0;
  const keyNames = target.keys.map((_, i) => keyAlias(i));
  const values = sql.join(
    replacements.map((r) => sql`(${typedValues(target, r.keys)}, ${r.value}, ${r.next})`),
    sql`, `,
  );
  const matches = target.keys.map((key, i) => sql`${key} = v.${keyNames[i]}`);
  const result: unknown = await db.execute(sql`
    update ${tableOf(target)}
    set ${bare(target.column)} = v.next
    from (values ${values}) as v(${sql.join(keyNames, sql`, `)}, previous, next)
    where ${sql.join(matches, sql` and `)} and ${target.column} = v.previous`);
  // node-postgres reports rowCount, PGlite affectedRows.
  const counts = result as { rowCount?: number | null; affectedRows?: number };
  return counts.rowCount ?? counts.affectedRows ?? 0;
}

function tableOf(target: EncryptedColumnRef): PgTable {
  return target.column.table;
}

/** The i-th key column's name in a batch's own rows (the select list, the values list). */
function keyAlias(i: number) {
  return sql.identifier(`k${i}`);
}

function keyList(target: EncryptedColumnRef): SQL {
  return sql.join([...target.keys], sql`, `);
}

/** Key values cast to their columns' types, so comparisons use the primary-key index. */
function typedValues(target: EncryptedColumnRef, values: readonly string[]): SQL {
  return sql.join(
    target.keys.map((key, i) => sql`${values[i]}::${sql.raw(key.getSQLType())}`),
    sql`, `,
  );
}
