import type { FastifyBaseLogger } from 'fastify';
import type { FieldCipher } from '../../platform/crypto.js';
import type { Db } from '../../platform/db.js';
import {
  listCiphertextsNotUnder,
  replaceCiphertexts,
  type CiphertextRow,
} from './transactions.repository.js';

/** Rows re-encrypted per database transaction: small enough to hold locks briefly. */
export const ROTATION_BATCH_SIZE_DEFAULT = 500;
export const ROTATION_BATCH_SIZE_MAX = 10_000;

export interface RotationResult {
  scanned: number;
  reencrypted: number;
  /** True when a signal stopped the run before it reached the end; run again to resume. */
  interrupted: boolean;
}

/**
 * Re-encrypts every stored name that is not on the active key, in bounded batches. Progress is
 * the data itself (rows still on an old key), so an interrupted run resumes where it stopped.
 */
export async function rotateKeys(
  db: Db,
  cipher: FieldCipher,
  options: { batchSize?: number; signal?: AbortSignal; logger?: FastifyBaseLogger } = {},
): Promise<RotationResult> {
  const batchSize = Math.min(
    options.batchSize ?? ROTATION_BATCH_SIZE_DEFAULT,
    ROTATION_BATCH_SIZE_MAX,
  );
  const prefix = `v1.${cipher.activeKeyId}.`;
  const result: RotationResult = { scanned: 0, reencrypted: 0, interrupted: false };
  let after: Pick<CiphertextRow, 'userId' | 'id'> | undefined;
  for (;;) {
    if (options.signal?.aborted) {
      result.interrupted = true;
      break;
    }
    const rows = await listCiphertextsNotUnder(db, prefix, after, batchSize);
    if (rows.length === 0) break;
    const replacements = rows.map((row) => ({
      ...row,
      previous: row.fullNameCiphertext,
      fullNameCiphertext: cipher.encrypt(cipher.decrypt(row.fullNameCiphertext, row.id), row.id),
    }));
    // One statement per batch: atomic without an explicit transaction.
    result.reencrypted += await replaceCiphertexts(db, replacements);
    result.scanned += rows.length;
    after = rows.at(-1);
    options.logger?.info(
      { scanned: result.scanned, reencrypted: result.reencrypted },
      'key rotation progress',
    );
  }
  return result;
}
