import { and, asc, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import type { FastifyBaseLogger } from 'fastify';
import { idempotencyKeys, transactions, webhooks } from '../db/schema/index.js';
import { secretAssociatedData } from '../domain/associated-data.js';
import type { FieldCipher } from './crypto.js';
import { queryRows, type Db } from '../db/client.js';
import { idempotencyAssociatedData } from './idempotency.js';

/** Rows re-encrypted per statement: small enough to hold row locks briefly. */
export const ROTATION_BATCH_SIZE_DEFAULT = 500;
export const ROTATION_BATCH_SIZE_MAX = 10_000;

/** A column holding FieldCipher values, and how to find each value's associated data. */
export interface EncryptedColumn {
  name: string;
  table: PgTable;
  /** The primary key, in order: batches walk it. */
  keys: readonly PgColumn[];
  column: PgColumn;
  associatedData(keys: readonly string[]): string;
}

/** Every encrypted column the service writes. A new one must be listed here to rotate. */
export const ENCRYPTED_COLUMNS: readonly EncryptedColumn[] = [
  {
    name: 'transactions.full_name_ciphertext',
    table: transactions,
    keys: [transactions.userId, transactions.id],
    column: transactions.fullNameCiphertext,
    associatedData: ([, id]) => id ?? '',
  },
  {
    name: 'idempotency_keys.response_body',
    table: idempotencyKeys,
    keys: [idempotencyKeys.scope, idempotencyKeys.key],
    column: idempotencyKeys.responseBody,
    associatedData: ([scope, key]) => idempotencyAssociatedData(scope ?? '', key ?? ''),
  },
  {
    name: 'webhooks.secret_ciphertext',
    table: webhooks,
    keys: [webhooks.id],
    column: webhooks.secretCiphertext,
    associatedData: ([id]) => secretAssociatedData(id ?? ''),
  },
  {
    name: 'webhooks.previous_secret_ciphertext',
    table: webhooks,
    keys: [webhooks.id],
    column: webhooks.previousSecretCiphertext,
    associatedData: ([id]) => secretAssociatedData(id ?? ''),
  },
];

export interface RotationResult {
  scanned: number;
  reencrypted: number;
  /** Values that could not be decrypted (their ids are logged); they stay as they were. */
  failed: number;
  /** True when a signal stopped the run before it reached the end; run again to resume. */
  interrupted: boolean;
}

export interface RotationOptions {
  batchSize?: number;
  signal?: AbortSignal;
  logger?: Pick<FastifyBaseLogger, 'info' | 'warn'>;
  columns?: readonly EncryptedColumn[];
}

/**
 * Re-encrypts every value that is not on the active key, in bounded batches. Progress is the data
 * itself (values still on an old key), so an interrupted run resumes where it stopped.
 */
export async function rotateKeys(
  db: Db,
  cipher: FieldCipher,
  options: RotationOptions = {},
): Promise<RotationResult> {
  const total: RotationResult = { scanned: 0, reencrypted: 0, failed: 0, interrupted: false };
  for (const target of options.columns ?? ENCRYPTED_COLUMNS) {
    const result = await rotateColumn(db, cipher, target, options);
    total.scanned += result.scanned;
    total.reencrypted += result.reencrypted;
    total.failed += result.failed;
    if (result.interrupted) return { ...total, interrupted: true };
  }
  return total;
}

interface StoredValue {
  keys: string[];
  value: string;
}

async function rotateColumn(
  db: Db,
  cipher: FieldCipher,
  target: EncryptedColumn,
  options: RotationOptions,
): Promise<RotationResult> {
  const batchSize = Math.min(
    options.batchSize ?? ROTATION_BATCH_SIZE_DEFAULT,
    ROTATION_BATCH_SIZE_MAX,
  );
  const prefix = cipher.activePrefix;
  const result: RotationResult = { scanned: 0, reencrypted: 0, failed: 0, interrupted: false };
  let after: string[] | undefined;
  for (;;) {
    if (options.signal?.aborted) return { ...result, interrupted: true };
    const rows = await listNotUnder(db, target, prefix, after, batchSize);
    if (rows.length === 0) return result;
    const replacements: (StoredValue & { next: string })[] = [];
    for (const row of rows) {
      const associatedData = target.associatedData(row.keys);
      try {
        const plaintext = cipher.decrypt(row.value, associatedData);
        replacements.push({ ...row, next: cipher.encrypt(plaintext, associatedData) });
      } catch (error) {
        // One damaged value must not stop the rotation of every other one.
        result.failed += 1;
        options.logger?.warn(
          { column: target.name, keys: row.keys, err: { message: (error as Error).message } },
          'key rotation could not decrypt a value',
        );
      }
    }
    result.reencrypted += await replaceValues(db, target, replacements);
    result.scanned += rows.length;
    after = rows.at(-1)?.keys;
    options.logger?.info(
      { column: target.name, scanned: result.scanned, reencrypted: result.reencrypted },
      'key rotation progress',
    );
  }
}

async function listNotUnder(
  db: Db,
  target: EncryptedColumn,
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
      target.keys.map((key, i) => sql`${key}::text as ${sql.identifier(`k${i}`)}`),
      sql`, `,
    )}, ${target.column} as value
    from ${target.table}
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
 */
async function replaceValues(
  db: Db,
  target: EncryptedColumn,
  replacements: readonly (StoredValue & { next: string })[],
): Promise<number> {
  if (replacements.length === 0) return 0;
  const keyNames = target.keys.map((_, i) => sql.identifier(`k${i}`));
  const values = sql.join(
    replacements.map((r) => sql`(${typedValues(target, r.keys)}, ${r.value}, ${r.next})`),
    sql`, `,
  );
  const matches = target.keys.map((key, i) => sql`${key} = v.${keyNames[i]}`);
  const result: unknown = await db.execute(sql`
    update ${target.table}
    set ${sql.identifier(target.column.name)} = v.next
    from (values ${values}) as v(${sql.join(keyNames, sql`, `)}, previous, next)
    where ${sql.join(matches, sql` and `)} and ${target.column} = v.previous`);
  // node-postgres reports rowCount, PGlite affectedRows.
  const counts = result as { rowCount?: number | null; affectedRows?: number };
  return counts.rowCount ?? counts.affectedRows ?? 0;
}

function keyList(target: EncryptedColumn): SQL {
  return sql.join([...target.keys], sql`, `);
}

/** Key values cast to their columns' types, so comparisons use the primary-key index. */
function typedValues(target: EncryptedColumn, values: readonly string[]): SQL {
  return sql.join(
    target.keys.map((key, i) => sql`${values[i]}::${sql.raw(key.getSQLType())}`),
    sql`, `,
  );
}
