import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { useTestApp } from '../helpers/app.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

const context = useTestApp();

async function create(overrides: Record<string, unknown> = {}) {
  const response = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody(overrides),
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json().data;
}

function expectError(
  response: { statusCode: number; json: () => any; headers: Record<string, unknown> },
  status: number,
  code: string,
  message?: string,
) {
  expect(response.statusCode).toBe(status);
  const body = response.json();
  expect(Object.keys(body).sort()).toEqual(
    body.detail
      ? ['code', 'detail', 'message', 'name', 'request_id']
      : ['code', 'message', 'name', 'request_id'],
  );
  expect(body.name).toBe('FidoTransactionsAPI');
  expect(body.code).toBe(code);
  expect(body.request_id).toBe(response.headers['x-request-id']);
  if (message !== undefined) expect(body.message).toBe(message);
  return body;
}

/** Sends a create with one field changed and returns the 422 detail entries. */
async function createDetail(overrides: Record<string, unknown>) {
  const response = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction',
    payload: transactionBody(overrides),
  });
  return expectError(response, 422, 'VALIDATION_FAILED').detail as {
    loc: (string | number)[];
    msg: string;
    type: string;
  }[];
}

describe('GET /', () => {
  it('welcomes', async () => {
    const response = await context.app.inject({ method: 'GET', url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ message: 'Welcome to Fido Transactions API' });
  });
});

describe('POST /api/v1/transaction/', () => {
  it('creates a transaction and answers with it in the old envelope', async () => {
    const userId = uniqueUserId();
    const response = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: {
        user_id: userId,
        full_name: '  Ama Owusu  ',
        transaction_date: '2024-10-10T09:00:00+02:00',
        transaction_amount: 100.5,
        transaction_type: 'credit',
        description: 'salary',
        metadata: { source: 'payroll' },
        id: 'client-chosen-id',
        version: 99,
      },
    });
    expect(response.statusCode).toBe(201);
    const body = response.json();
    expect(body.code).toBe(201);
    expect(body.message).toBe('Transaction added successfully.');
    const { data } = body;
    expect(data).toMatchObject({
      user_id: userId,
      full_name: 'Ama Owusu',
      transaction_date: '2024-10-10T07:00:00.000Z',
      transaction_amount: 100.5,
      transaction_type: 'credit',
      currency: 'GHS',
      description: 'salary',
      metadata: { source: 'payroll' },
      version: 1,
    });
    expect(data.id).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(data.created_at).toBe(data.updated_at);
    expect(response.headers.etag).toBe('"1"');
    expect(response.headers.location).toBe(`/api/v1/transaction/${data.id}`);
  });

  it('accepts the path without a trailing slash, without redirecting', async () => {
    const response = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction',
      payload: transactionBody(),
    });
    expect(response.statusCode).toBe(201);
  });

  it('defaults the date to now and reads dates as UTC', async () => {
    const before = Date.now();
    const data = await create({ transaction_date: undefined });
    expect(Date.parse(data.transaction_date)).toBeGreaterThanOrEqual(before - 1);
    expect((await create({ transaction_date: '2024-10-10' })).transaction_date).toBe(
      '2024-10-10T00:00:00.000Z',
    );
    expect(
      (await create({ transaction_date: '2024-10-10T09:00:00.123456' })).transaction_date,
    ).toBe('2024-10-10T09:00:00.123Z');
  });

  it('keeps amounts exact, from numbers and decimal strings, in any currency exponent', async () => {
    expect((await create({ transaction_amount: '0.10' })).transaction_amount).toBe(0.1);
    expect((await create({ transaction_amount: 0.3 })).transaction_amount).toBe(0.3);
    expect((await create({ transaction_amount: '9999999999999.99' })).transaction_amount).toBe(
      9999999999999.99,
    );
    expect((await create({ transaction_amount: 1500, currency: 'JPY' })).transaction_amount).toBe(
      1500,
    );
    expect((await create({ transaction_amount: '1.234', currency: 'bhd' })).currency).toBe('BHD');
  });

  it('rejects every invalid amount with a 422 naming the field', async () => {
    for (const amount of [0, -5, '-5', true, null, 'abc', '1e3', '', [1], { v: 1 }]) {
      const detail = await createDetail({ transaction_amount: amount });
      expect(detail.map((d) => d.loc)).toContainEqual(['body', 'transaction_amount']);
    }
    const precise = await createDetail({ transaction_amount: 1.005 });
    expect(precise[0]).toMatchObject({
      loc: ['body', 'transaction_amount'],
      msg: 'Input should have at most 2 decimal places for GHS',
    });
    const yen = await createDetail({ transaction_amount: '1.5', currency: 'JPY' });
    expect(yen[0]?.msg).toMatch(/no decimal places/);
    const long = await createDetail({ transaction_amount: '1234567890123456' });
    expect(long[0]?.type).toBe('too_many_significant_digits');
  });

  it('refuses an amount JSON would round, instead of recording the rounded value', async () => {
    for (const [literal, type] of [
      ['100.100000000000000000001', 'too_many_fraction_digits'],
      ['12345678901234.56', 'too_many_significant_digits'],
    ]) {
      const body = JSON.stringify(transactionBody()).replace(
        '"transaction_amount":100',
        `"transaction_amount":${literal}`,
      );
      const response = await context.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { 'content-type': 'application/json' },
        payload: body,
      });
      expect(expectError(response, 422, 'VALIDATION_FAILED').detail[0]).toMatchObject({
        loc: ['body', 'transaction_amount'],
        type,
      });
    }
  });

  it('names every missing required field', async () => {
    const response = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: {},
    });
    const body = expectError(response, 422, 'VALIDATION_FAILED');
    expect(body.detail.map((d: { loc: string[] }) => d.loc)).toEqual([
      ['body', 'user_id'],
      ['body', 'full_name'],
      ['body', 'transaction_amount'],
      ['body', 'transaction_type'],
    ]);
    expect(body.detail[0]).toEqual({
      loc: ['body', 'user_id'],
      msg: 'Field required',
      type: 'missing',
    });
  });

  it.each([
    [{ user_id: '' }, 'user_id', 'string_too_short'],
    [{ user_id: 'x'.repeat(129) }, 'user_id', 'string_too_long'],
    [{ user_id: 'bad\u0000id' }, 'user_id', 'string_pattern_mismatch'],
    [{ full_name: '   ' }, 'full_name', 'string_too_short'],
    [{ full_name: 'n'.repeat(201) }, 'full_name', 'string_too_long'],
    [{ transaction_type: 'Credit' }, 'transaction_type', 'enum'],
    [{ transaction_date: '2024-02-30' }, 'transaction_date', 'datetime_parsing'],
    [{ transaction_date: 'yesterday' }, 'transaction_date', 'datetime_parsing'],
    [{ transaction_date: '2999-01-01T00:00:00Z' }, 'transaction_date', 'datetime_future'],
    [{ currency: 'XYZ' }, 'currency', 'value_error'],
    [{ currency: 'GH' }, 'currency', 'string_pattern_mismatch'],
    [{ description: 'd'.repeat(501) }, 'description', 'string_too_long'],
    [{ metadata: { k: 1 } }, 'metadata', 'string_type'],
    [
      { metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])) },
      'metadata',
      'too_long',
    ],
    [{ metadata: { k: 'v'.repeat(501) } }, 'metadata', 'string_too_long'],
  ])('rejects %j with a 422 on %s', async (overrides, field, type) => {
    const detail = await createDetail(overrides);
    const issue = detail.find((d) => d.loc[1] === field);
    expect(issue, JSON.stringify(detail)).toBeDefined();
    expect(issue?.type).toBe(type);
  });

  it.each([
    [{ full_name: 'Ama \ud800' }, 'full_name'],
    [{ full_name: 'Ama\tOwusu' }, 'full_name'],
    [{ description: 'a\u0000b' }, 'description'],
    [{ metadata: { note: 'a\u0000b' } }, 'metadata'],
    [{ metadata: { note: 'x\udc00' } }, 'metadata'],
  ])('refuses text the database could not store: %j', async (overrides, field) => {
    const detail = await createDetail(overrides);
    expect(detail.find((d) => d.loc[1] === field)?.type).toBe('string_pattern_mismatch');
  });

  it('explains patterns in words', async () => {
    const [issue] = await createDetail({ user_id: 'a\u0007b' });
    expect(issue?.msg).toBe('String should not contain control characters');
  });

  it('answers malformed JSON, empty and non-object bodies with 422 in the error shape', async () => {
    const malformed = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      headers: { 'content-type': 'application/json' },
      payload: '{"user_id": ',
    });
    expect(expectError(malformed, 422, 'MALFORMED_JSON').detail[0].type).toBe('json_invalid');
    for (const payload of ['', '[]', '"text"', '42', 'null']) {
      const response = await context.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(response.statusCode, payload).toBe(422);
      expectError(response, 422, 'VALIDATION_FAILED');
    }
  });

  it('refuses other content types with 415 and large bodies with 413', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const response = await context.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { 'content-type': type },
        payload: 'user_id=1',
      });
      expectError(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
    }
    const large = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: transactionBody({ description: 'x'.repeat(70 * 1024) }),
    });
    expectError(large, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('writes one audit event per change, without the name', async () => {
    const created = await create({ full_name: 'Kofi Mensah' });
    await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      payload: { transaction_amount: 5 },
    });
    await context.app.inject({ method: 'DELETE', url: `/api/v1/transaction/${created.id}` });
    const rows = await queryRows<{ type: string; payload: string }>(
      context.database.handle.db,
      sql`select type, payload::text as payload from events where transaction_id = ${created.id} order by sequence`,
    );
    expect(rows.map((r) => r.type)).toEqual([
      'transaction.created',
      'transaction.updated',
      'transaction.deleted',
    ]);
    for (const row of rows) expect(row.payload).not.toContain('Kofi');
    expect(JSON.parse(rows[1]!.payload)).toMatchObject({
      transaction: { transaction_amount: 5, version: 2 },
      previous: { transaction_amount: 100, version: 1 },
    });
  });
});

describe('GET /api/v1/transaction/{id}', () => {
  it('reads a transaction back with its ETag', async () => {
    const created = await create();
    const response = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${created.id}`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      data: created,
      code: 200,
      message: 'Transaction data retrieved successfully',
    });
    expect(response.headers.etag).toBe('"1"');
  });

  it.each(['0192e0c2-7a1b-7c3d-8e4f-123456789abc', 'not-a-uuid', '1'])(
    'answers 404 in the old wording for %s',
    async (id) => {
      const response = await context.app.inject({
        method: 'GET',
        url: `/api/v1/transaction/${id}`,
      });
      expectError(response, 404, 'TRANSACTION_NOT_FOUND', `Transaction with id: ${id} not found.`);
    },
  );
});

describe('GET /api/v1/transaction/history/{user_id}', () => {
  it("lists a user's transactions newest first with pagination", async () => {
    const userId = uniqueUserId();
    await create({ user_id: userId, transaction_date: '2024-01-01T00:00:00Z' });
    await create({ user_id: userId, transaction_date: '2024-03-01T00:00:00Z' });
    await create({ user_id: userId, transaction_date: '2024-02-01T00:00:00Z' });
    await create({ transaction_date: '2024-02-01T00:00:00Z' });
    const first = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}?limit=2`,
    });
    expect(first.statusCode).toBe(200);
    const page = first.json();
    expect(page.message).toBe('Transaction history retrieved successfully');
    expect(page.data.map((t: { transaction_date: string }) => t.transaction_date)).toEqual([
      '2024-03-01T00:00:00.000Z',
      '2024-02-01T00:00:00.000Z',
    ]);
    expect(page.pagination).toMatchObject({ limit: 2, has_more: true });
    const second = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}?limit=2&cursor=${page.pagination.next_cursor}`,
    });
    expect(second.json().data).toHaveLength(1);
    expect(second.json().pagination).toEqual({ limit: 2, next_cursor: null, has_more: false });
  });

  it('answers 404 for a user with no transactions at all', async () => {
    const response = await context.app.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/nobody-here',
    });
    expectError(
      response,
      404,
      'TRANSACTION_HISTORY_NOT_FOUND',
      'Transaction history not found for user ID nobody-here',
    );
  });
});

describe('one record, three answers', () => {
  it('the create, the read and the history page show the same fields in the same order', async () => {
    const userId = uniqueUserId();
    // Keys jsonb reorders (shorter first, then by bytes): the create must not show another order.
    const metadata = { zeta: '1', a: '2', é: '3', bb: '4', B: '5' };
    const created = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: transactionBody({ user_id: userId, metadata }),
    });
    const read = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${created.json().data.id}`,
    });
    const page = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}`,
    });
    const fromCreate = JSON.stringify(created.json().data);
    expect(JSON.stringify(read.json().data)).toBe(fromCreate);
    expect(JSON.stringify(page.json().data[0])).toBe(fromCreate);
    expect(Object.keys(created.json().data.metadata)).toEqual(['B', 'a', 'bb', 'é', 'zeta']);
    expect(Object.keys(created.json().data).slice(0, 3)).toEqual(['id', 'user_id', 'full_name']);
  });
});

describe('PUT and PATCH /api/v1/transaction/{id}', () => {
  it.each(['PUT', 'PATCH'] as const)('%s updates only the fields sent', async (method) => {
    const created = await create({ description: 'before', metadata: { a: '1' } });
    const response = await context.app.inject({
      method,
      url: `/api/v1/transaction/${created.id}`,
      payload: { transaction_amount: '42.10', description: null },
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.message).toBe('Transaction updated successfully');
    expect(body.data).toMatchObject({
      ...created,
      transaction_amount: 42.1,
      description: null,
      version: 2,
      updated_at: body.data.updated_at,
    });
    expect(response.headers.etag).toBe('"2"');
    const read = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${created.id}`,
    });
    expect(read.json().data).toEqual(body.data);
  });

  it('changes the name, re-encrypted, and keeps the amount when only the currency changes', async () => {
    const created = await create({ transaction_amount: 12 });
    const response = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      payload: { full_name: 'Efua Sarpong', currency: 'JPY' },
    });
    expect(response.json().data).toMatchObject({
      full_name: 'Efua Sarpong',
      currency: 'JPY',
      transaction_amount: 12,
    });
    const fractional = await create({ transaction_amount: 12.5 });
    const refused = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${fractional.id}`,
      payload: { currency: 'JPY' },
    });
    expect(expectError(refused, 422, 'VALIDATION_FAILED').detail[0].loc).toEqual([
      'body',
      'currency',
    ]);
  });

  it('refuses to move a transaction to another user, and empty updates', async () => {
    const created = await create();
    const moved = await context.app.inject({
      method: 'PUT',
      url: `/api/v1/transaction/${created.id}`,
      payload: { user_id: 'someone-else' },
    });
    expect(expectError(moved, 422, 'VALIDATION_FAILED').detail[0]).toMatchObject({
      loc: ['body', 'user_id'],
      type: 'immutable',
    });
    const same = await context.app.inject({
      method: 'PUT',
      url: `/api/v1/transaction/${created.id}`,
      payload: { user_id: created.user_id, description: 'ok' },
    });
    expect(same.statusCode).toBe(200);
    for (const payload of [{}, { unknown: 1 }]) {
      const empty = await context.app.inject({
        method: 'PATCH',
        url: `/api/v1/transaction/${created.id}`,
        payload,
      });
      expect(expectError(empty, 422, 'VALIDATION_FAILED').detail[0].loc).toEqual(['body']);
    }
  });

  it('validates updated fields like created ones', async () => {
    const created = await create();
    const response = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      payload: { transaction_amount: -1, transaction_type: 'refund' },
    });
    const locs = expectError(response, 422, 'VALIDATION_FAILED').detail.map(
      (d: { loc: string[] }) => d.loc[1],
    );
    expect(locs.sort()).toEqual(['transaction_amount', 'transaction_type']);
  });

  it.each(['0192e0c2-7a1b-7c3d-8e4f-123456789abc', 'not-a-uuid'])(
    'answers 404 in the old update wording for %s',
    async (id) => {
      const response = await context.app.inject({
        method: 'PUT',
        url: `/api/v1/transaction/${id}`,
        payload: { description: 'x' },
      });
      expectError(response, 404, 'TRANSACTION_NOT_FOUND', `Transaction not found for ID: ${id}`);
    },
  );

  it('honours If-Match: a stale version answers 412 and changes nothing', async () => {
    const created = await create();
    const first = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      headers: { 'if-match': '"1"' },
      payload: { description: 'first' },
    });
    expect(first.statusCode).toBe(200);
    for (const ifMatch of ['"1"', 'W/"2"', '"02"', 'garbage']) {
      const stale = await context.app.inject({
        method: 'PATCH',
        url: `/api/v1/transaction/${created.id}`,
        headers: { 'if-match': ifMatch },
        payload: { description: 'second' },
      });
      expectError(stale, 412, 'PRECONDITION_FAILED');
    }
    const star = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      headers: { 'if-match': '*' },
      payload: { description: 'third' },
    });
    expect(star.json().data).toMatchObject({ description: 'third', version: 3 });
    const list = await context.app.inject({
      method: 'PUT',
      url: `/api/v1/transaction/${created.id}`,
      headers: { 'if-match': '"9", "3"' },
      payload: { description: 'fourth' },
    });
    expect(list.statusCode).toBe(200);
  });
});

describe('DELETE /api/v1/transaction/{id}', () => {
  it('deletes, then answers 404 in the old shape', async () => {
    const created = await create();
    const response = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/transaction/${created.id}`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      data: `Transaction with ID: ${created.id} removed`,
      code: 200,
      message: 'Transaction deleted successfully',
    });
    const again = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/transaction/${created.id}`,
    });
    expectError(
      again,
      404,
      'TRANSACTION_NOT_FOUND',
      `Transaction with id: ${created.id} not found.`,
    );
    const read = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${created.id}`,
    });
    expect(read.statusCode).toBe(404);
  });

  it('honours If-Match', async () => {
    const created = await create();
    const stale = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/transaction/${created.id}`,
      headers: { 'if-match': '"7"' },
    });
    expectError(stale, 412, 'PRECONDITION_FAILED');
    const current = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/transaction/${created.id}`,
      headers: { 'if-match': '"1"' },
    });
    expect(current.statusCode).toBe(200);
  });
});

describe('errors outside the routes', () => {
  it('answers unknown routes with 404 and wrong methods with 405, in the error shape', async () => {
    const unknown = await context.app.inject({ method: 'GET', url: '/api/v1/nothing' });
    expectError(unknown, 404, 'ROUTE_NOT_FOUND');
    const wrong = await context.app.inject({ method: 'PATCH', url: '/api/v1/transaction' });
    expectError(wrong, 405, 'METHOD_NOT_ALLOWED');
    expect(wrong.headers.allow).toBe('POST');
    const root = await context.app.inject({ method: 'DELETE', url: '/' });
    expect(root.statusCode).toBe(405);
    expect(root.headers.allow).toBe('GET');
    const history = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/history/u1',
    });
    expect(history.statusCode).toBe(405);
    expect(history.headers.allow).toBe('GET');
  });

  it('echoes a safe X-Request-Id and replaces an unsafe one', async () => {
    const kept = await context.app.inject({
      method: 'GET',
      url: '/nowhere',
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(kept.headers['x-request-id']).toBe('abc-123');
    expect(kept.json().request_id).toBe('abc-123');
    const replaced = await context.app.inject({
      method: 'GET',
      url: '/nowhere',
      headers: { 'x-request-id': 'bad id\nwith newline' },
    });
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('URLs', () => {
  it('answers a URL that does not decode, and an over-long path segment, in the error shape', async () => {
    const bad = await context.app.inject({ method: 'GET', url: '/api/v1/transaction/%E0%A4%A' });
    expectError(bad, 400, 'BAD_REQUEST');
    const long = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${'a'.repeat(2_000)}`,
    });
    expectError(long, 414, 'URI_TOO_LONG');
    const id = 'b'.repeat(150);
    const longish = await context.app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
    expectError(longish, 404, 'TRANSACTION_NOT_FOUND', `Transaction with id: ${id} not found.`);
  });

  it('serves the history of a user id at its full length in any script', async () => {
    const userId = '😀'.repeat(128);
    await create({ user_id: userId });
    const response = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${encodeURIComponent(userId)}`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().data[0].user_id).toBe(userId);
  });
});

describe('operations', () => {
  it('reports liveness and readiness', async () => {
    const live = await context.app.inject({ method: 'GET', url: '/healthz' });
    expect(live.json()).toEqual({ status: 'ok' });
    const ready = await context.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', checks: { database: 'ok', cache: 'ok' } });
  });

  it('serves interactive docs and the OpenAPI document', async () => {
    const docs = await context.app.inject({ method: 'GET', url: '/docs' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toMatch(/text\/html/);
    const spec = await context.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(spec.statusCode).toBe(200);
    expect(Object.keys(spec.json().paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/transaction',
        '/api/v1/transaction/{id}',
        '/api/v1/transaction/history/{user_id}',
      ]),
    );
  });
});
