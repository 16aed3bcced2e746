import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/client.js';
import {
  ENCRYPTED_COLUMNS,
  encryptedColumnName,
  listValuesNotUnder,
  replaceValues,
  type EncryptedColumn,
  type StoredValue,
} from '../db/key-rotation.repository.js';
import type { FieldCipher } from './crypto.js';

/** Rows re-encrypted per statement: small enough to hold row locks briefly. */
export const ROTATION_BATCH_SIZE_DEFAULT = 500;
export const ROTATION_BATCH_SIZE_MAX = 10_000;

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
  const name = encryptedColumnName(target);
  const result: RotationResult = { scanned: 0, reencrypted: 0, failed: 0, interrupted: false };
  let after: string[] | undefined;
  for (;;) {
    if (options.signal?.aborted) return { ...result, interrupted: true };
    const rows = await listValuesNotUnder(db, target, prefix, after, batchSize);
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
          { column: name, keys: row.keys, err: { message: (error as Error).message } },
          'key rotation could not decrypt a value',
        );
      }
    }
    result.reencrypted += await replaceValues(db, target, replacements);
    result.scanned += rows.length;
    after = rows.at(-1)?.keys;
    options.logger?.info(
      { column: name, scanned: result.scanned, reencrypted: result.reencrypted },
      'key rotation progress',
    );
  }
}
