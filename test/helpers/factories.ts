import { randomUUID } from 'node:crypto';

let sequence = 0;

/** A user id no other test uses. */
export function uniqueUserId(prefix = 'user'): string {
  sequence += 1;
  return `${prefix}-${sequence}-${randomUUID().slice(0, 8)}`;
}

export function transactionBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    user_id: uniqueUserId(),
    full_name: 'Ama Owusu',
    transaction_date: '2024-10-10T09:00:00Z',
    transaction_amount: 100,
    transaction_type: 'credit',
    ...overrides,
  };
}
