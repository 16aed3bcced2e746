import type { Static } from 'typebox';
import type { FieldCipher } from '../../platform/crypto.js';
import { currencyExponent, minorToNumber } from '../../domain/money.js';
import type { TransactionRow } from './transactions.repository.js';
import type { HistoryEnvelope, Transaction } from './transactions.schemas.js';

/**
 * The API's view of a row, its fields in the schema's order (history bodies keep it): what every
 * route answers with, and what the legacy export writes (in its own column order).
 */
export function transactionView(row: TransactionRow, cipher: FieldCipher): Transaction {
  const { id, user_id, ...rest } = publicFields(row);
  return { id, user_id, full_name: cipher.decrypt(row.fullNameCiphertext, row.id), ...rest };
}

/** Everything about a transaction except the personal name: what events may carry. */
export function publicFields(row: TransactionRow): Omit<Transaction, 'full_name'> {
  return {
    id: row.id,
    user_id: row.userId,
    transaction_date: row.transactionDate.toISOString(),
    transaction_amount: minorToNumber(row.amountMinor, currencyExponent(row.currency)),
    transaction_type: row.transactionType,
    currency: row.currency,
    description: row.description,
    metadata: row.metadata,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    version: row.version,
    legacy_id: row.legacyId,
  };
}

/**
 * A history page's v1 response body (HistoryEnvelope), as text: what the cache keeps and the
 * route sends as is.
 */
export function historyBody(
  data: Static<typeof Transaction>[],
  pagination: Static<typeof HistoryEnvelope>['pagination'],
): string {
  const body: Static<typeof HistoryEnvelope> = {
    data,
    code: 200,
    message: 'Transaction history retrieved successfully',
    pagination,
  };
  return JSON.stringify(body);
}
