import createClient from 'openapi-fetch';
import type { paths } from './fido-api.js';

/**
 * The examples of docs/api.md, written against a client generated from the OpenAPI document
 * (openapi-typescript types, `npm run client:types`, and openapi-fetch): `npm run typecheck`
 * fails when the document stops describing them, and test/integration/typed-client.test.ts runs
 * them against a real server.
 */
export async function docsExamples(baseUrl: string, token: string) {
  const client = createClient<paths>({ baseUrl, headers: { authorization: `Bearer ${token}` } });

  const welcome = await client.GET('/');
  const welcomeMessage: string | undefined = welcome.data?.message;

  // Create a transaction (the amount as a decimal string, exactly).
  const created = await client.POST('/api/v1/transaction', {
    body: {
      user_id: 'user-123',
      full_name: 'Ama Owusu',
      transaction_date: '2024-10-10T09:00:00Z',
      transaction_amount: '100.50',
      transaction_type: 'credit',
      currency: 'GHS',
      description: 'Salary',
      metadata: { source: 'payroll' },
    },
  });
  if (!created.data) throw new Error(`create answered ${created.response.status}`);
  const id: string = created.data.data.id;
  const etag = created.response.headers.get('etag') ?? '';

  // Create with an Idempotency-Key, twice: the second is the stored answer.
  const order = {
    user_id: 'user-123',
    full_name: 'Ama Owusu',
    transaction_date: '2024-10-11',
    transaction_amount: 1500,
    transaction_type: 'debit' as const,
    currency: 'JPY',
  };
  const headers = { 'idempotency-key': 'order-42' };
  const first = await client.POST('/api/v1/transaction', {
    body: order,
    params: { header: headers },
  });
  const replay = await client.POST('/api/v1/transaction', {
    body: order,
    params: { header: headers },
  });

  // Read one, then history page by page.
  const read = await client.GET('/api/v1/transaction/{id}', { params: { path: { id } } });
  const amount: number | undefined = read.data?.data.transaction_amount;
  const page = await client.GET('/api/v1/transaction/history/{user_id}', {
    params: { path: { user_id: 'user-123' }, query: { limit: 1 } },
  });
  const cursor = page.data?.pagination.next_cursor;
  const next = cursor
    ? await client.GET('/api/v1/transaction/history/{user_id}', {
        params: { path: { user_id: 'user-123' }, query: { limit: 1, cursor } },
      })
    : undefined;
  const filtered = await client.GET('/api/v1/transaction/history/{user_id}', {
    params: {
      path: { user_id: 'user-123' },
      query: {
        start_date: '2024-10-11',
        end_date: '2024-10-12T23:59:59.999Z',
        transaction_type: 'debit',
        currency: 'jpy',
      },
    },
  });

  // Update with If-Match, then again with the stale tag: 412, in the error shape.
  const updated = await client.PUT('/api/v1/transaction/{id}', {
    params: { path: { id }, header: { 'if-match': etag } },
    body: { transaction_amount: '120.75', description: 'Salary (corrected)' },
  });
  const stale = await client.PUT('/api/v1/transaction/{id}', {
    params: { path: { id }, header: { 'if-match': etag } },
    body: { transaction_amount: '120.75' },
  });
  const staleCode: string | undefined = stale.error?.code;

  // Analytics, all time and over a range.
  const analytics = await client.GET('/api/v1/analytics/{user_id}', {
    params: { path: { user_id: 'user-123' }, query: { currency: 'GHS' } },
  });
  const net: number | undefined = analytics.data?.data.net_total;
  const range = await client.GET('/api/v1/analytics/range/{user_id}', {
    params: {
      path: { user_id: 'user-123' },
      query: { start_date: '2024-10-10T12:00:00Z', end_date: '2024-10-11', currency: 'JPY' },
    },
  });

  // Delete, then delete again: 404.
  const deleted = await client.DELETE('/api/v1/transaction/{id}', {
    params: { path: { id }, header: { 'if-match': updated.response.headers.get('etag') ?? '' } },
  });
  const again = await client.DELETE('/api/v1/transaction/{id}', { params: { path: { id } } });

  return {
    welcomeMessage,
    created: created.response.status,
    replayed: replay.response.headers.get('idempotent-replayed'),
    sameId: first.data?.data.id === replay.data?.data.id,
    amount,
    pages: [page.response.status, next?.response.status],
    filtered: filtered.data?.data.length,
    updated: updated.data?.data.version,
    staleCode,
    net,
    range: range.data?.data.transaction_count,
    deleted: deleted.data?.data,
    again: again.error?.code,
  };
}
