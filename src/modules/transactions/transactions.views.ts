import type { Static } from 'typebox';
import type { HistoryEnvelope, Transaction } from './transactions.schemas.js';

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
