import type { TransactionRow } from './transactions.repository.js';

/**
 * Rows as cached text: exactly what the database holds (the name stays ciphertext), with the
 * bigint amount as a string and dates as ISO 8601.
 */
export function encodeRows(rows: readonly TransactionRow[]): unknown[] {
  return rows.map((row) => ({
    ...row,
    amountMinor: row.amountMinor.toString(),
    transactionDate: row.transactionDate.toISOString(),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }));
}

type EncodedRow = Omit<
  TransactionRow,
  'amountMinor' | 'transactionDate' | 'createdAt' | 'updatedAt'
> & {
  amountMinor: string;
  transactionDate: string;
  createdAt: string;
  updatedAt: string;
};

export function decodeRows(encoded: unknown): TransactionRow[] {
  return (encoded as EncodedRow[]).map((row) => ({
    ...row,
    amountMinor: BigInt(row.amountMinor),
    transactionDate: new Date(row.transactionDate),
    createdAt: new Date(row.createdAt),
    updatedAt: new Date(row.updatedAt),
  }));
}
