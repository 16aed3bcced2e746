import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { expireIdempotencyKeys } from '../../src/platform/idempotency.js';
import { useTestApp } from '../helpers/app.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';
import type { ErrorBody as ErrorResponse } from '../../src/platform/http-errors.js';

interface TransactionView {
  id: string;
  user_id: string;
  full_name: string;
  transaction_amount: number;
  description: string | null;
  version: number;
}

const context = useTestApp();

const newKey = () => `key-${randomUUID()}`;

function post(body: unknown, key?: string): Promise<LightMyRequestResponse> {
  return context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    headers: key === undefined ? {} : { 'idempotency-key': key },
    payload: body as Record<string, unknown>,
  });
}

function write(
  method: 'PUT' | 'PATCH' | 'DELETE',
  id: string,
  key: string | undefined,
  body?: Record<string, unknown>,
): Promise<LightMyRequestResponse> {
  return context.app.inject({
    method,
    url: `/api/v1/transaction/${id}`,
    headers: key === undefined ? {} : { 'idempotency-key': key },
    ...(body === undefined ? {} : { payload: body }),
  });
}

function get(id: string): Promise<LightMyRequestResponse> {
  return context.app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
}

async function countTransactions(userId: string): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    context.database.handle.db,
    sql`select count(*)::int as n from transactions where user_id = ${userId}`,
  );
  return row!.n;
}

async function countKeyRows(key: string): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    context.database.handle.db,
    sql`select count(*)::int as n from idempotency_keys where key = ${key}`,
  );
  return row!.n;
}

function errorOf(res: LightMyRequestResponse): ErrorResponse {
  return res.json<ErrorResponse>();
}

function expectReplayOf(replay: LightMyRequestResponse, original: LightMyRequestResponse): void {
  expect(replay.statusCode).toBe(original.statusCode);
  expect(replay.body).toBe(original.body);
  expect(replay.headers['idempotent-replayed']).toBe('true');
  expect(replay.headers['content-type']).toBe(original.headers['content-type']);
  expect(replay.headers.etag).toBe(original.headers.etag);
  expect(replay.headers.location).toBe(original.headers.location);
}

describe('concurrent duplicates of one POST', () => {
  const userId = uniqueUserId('dup');
  const key = newKey();
  const body = transactionBody({
    user_id: userId,
    full_name: 'Kofi Duplicate',
    transaction_amount: '12.34',
  });
  let responses: LightMyRequestResponse[] = [];

  beforeAll(async () => {
    responses = await Promise.all(Array.from({ length: 20 }, () => post(body, key)));
  });

  it('answers each with the created transaction or, while the first is in flight, 409', () => {
    const succeeded = responses.filter((res) => res.statusCode === 201);
    const refused = responses.filter((res) => res.statusCode !== 201);
    expect(succeeded.length).toBeGreaterThanOrEqual(1);
    expect(succeeded.length + refused.length).toBe(20);
    for (const res of refused) {
      expect(res.statusCode).toBe(409);
      const error = errorOf(res);
      expect(error.code).toBe('IDEMPOTENCY_KEY_IN_FLIGHT');
      expect(error.name).toBe('FidoTransactionsAPI');
      expect(res.headers['idempotent-replayed']).toBeUndefined();
    }
  });

  it('gives every 2xx the same bytes and the same id; only the first is not a replay', () => {
    const succeeded = responses.filter((res) => res.statusCode === 201);
    const first = succeeded.filter((res) => res.headers['idempotent-replayed'] === undefined);
    expect(first).toHaveLength(1);
    for (const res of succeeded) {
      expect(res.body).toBe(first[0]!.body);
      expect(res.headers.etag).toBe('"1"');
      expect(res.headers.location).toBe(first[0]!.headers.location);
      if (res !== first[0]) expect(res.headers['idempotent-replayed']).toBe('true');
    }
    const created = first[0]!.json<{ data: TransactionView; code: number; message: string }>();
    expect(created.code).toBe(201);
    expect(created.message).toBe('Transaction added successfully.');
    expect(created.data.user_id).toBe(userId);
    expect(created.data.transaction_amount).toBe(12.34);
    expect(new Set(succeeded.map((res) => res.json<{ data: TransactionView }>().data.id))).toEqual(
      new Set([created.data.id]),
    );
    expect(first[0]!.headers.location).toBe(`/api/v1/transaction/${created.data.id}`);
  });

  it('created exactly one row', async () => {
    expect(await countTransactions(userId)).toBe(1);
    const history = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}`,
    });
    expect(history.statusCode).toBe(200);
    const rows = history.json<{ data: TransactionView[] }>().data;
    const created = responses.find((res) => res.statusCode === 201)!;
    expect(rows.map((row) => row.id)).toEqual([created.json<{ data: TransactionView }>().data.id]);
    expect(await countKeyRows(key)).toBe(1);
  });

  it('replays the stored response byte for byte on a later retry', async () => {
    const original = responses.find(
      (res) => res.statusCode === 201 && res.headers['idempotent-replayed'] === undefined,
    )!;
    const replay = await post(body, key);
    expect(replay.statusCode).toBe(201);
    expectReplayOf(replay, original);
    expect(replay.headers.etag).toBe('"1"');
    expect(await countTransactions(userId)).toBe(1);
  });

  it('treats the same body with its keys in another order as the same request', async () => {
    const original = responses.find((res) => res.statusCode === 201)!;
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    expect(Object.keys(reordered)).not.toEqual(Object.keys(body));
    const replay = await post(reordered, key);
    expect(replay.statusCode).toBe(201);
    expect(replay.body).toBe(original.body);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    // Formatting is not part of the request either.
    const spaced = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      headers: { 'idempotency-key': key, 'content-type': 'application/json' },
      payload: JSON.stringify(reordered, null, 4),
    });
    expect(spaced.statusCode).toBe(201);
    expect(spaced.body).toBe(original.body);
    expect(await countTransactions(userId)).toBe(1);
  });

  it('refuses the same key with a different body with 422, changing nothing', async () => {
    for (const changed of [
      { ...body, transaction_amount: '12.35' },
      { ...body, description: 'now with a description' },
      { ...body, full_name: 'Kofi Different' },
    ]) {
      const res = await post(changed, key);
      expect(res.statusCode).toBe(422);
      const error = errorOf(res);
      expect(error.code).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(error.message).toBe('This Idempotency-Key was used with a different request');
      expect(res.headers['idempotent-replayed']).toBeUndefined();
    }
    expect(await countTransactions(userId)).toBe(1);
  });

  it('refuses the same key on another method or path with 422', async () => {
    const created = responses.find((res) => res.statusCode === 201)!;
    const id = created.json<{ data: TransactionView }>().data.id;
    const patch = await write('PATCH', id, key, { description: 'x' });
    expect(patch.statusCode).toBe(422);
    expect(errorOf(patch).code).toBe('IDEMPOTENCY_KEY_REUSED');
    const read = await get(id);
    expect(read.json<{ data: TransactionView }>().data.version).toBe(1);
  });

  it('does not share keys with requests without a key', async () => {
    const res = await post(body);
    expect(res.statusCode).toBe(201);
    expect(res.headers['idempotent-replayed']).toBeUndefined();
    expect(await countTransactions(userId)).toBe(2);
  });
});

describe('updates and deletes with a key', () => {
  it('replays a PUT without applying it twice', async () => {
    const created = (await post(transactionBody({ description: 'before' }))).json<{
      data: TransactionView;
    }>().data;
    const key = newKey();
    const update = { description: 'after', transaction_amount: 250 };
    const first = await write('PUT', created.id, key, update);
    expect(first.statusCode).toBe(200);
    expect(first.headers.etag).toBe('"2"');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const firstBody = first.json<{ data: TransactionView; code: number; message: string }>();
    expect(firstBody).toMatchObject({ code: 200, message: 'Transaction updated successfully' });
    expect(firstBody.data).toMatchObject({
      description: 'after',
      transaction_amount: 250,
      version: 2,
    });

    const replay = await write('PUT', created.id, key, update);
    expectReplayOf(replay, first);

    const read = await get(created.id);
    expect(read.headers.etag).toBe('"2"');
    expect(read.json<{ data: TransactionView }>().data.version).toBe(2);

    const reused = await write('PUT', created.id, key, { description: 'other' });
    expect(reused.statusCode).toBe(422);
    expect(errorOf(reused).code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('replays a PATCH without applying it twice', async () => {
    const created = (await post(transactionBody())).json<{ data: TransactionView }>().data;
    const key = newKey();
    const first = await write('PATCH', created.id, key, { full_name: 'Patched Name' });
    expect(first.statusCode).toBe(200);
    const replay = await write('PATCH', created.id, key, { full_name: 'Patched Name' });
    expectReplayOf(replay, first);
    expect((await get(created.id)).json<{ data: TransactionView }>().data.version).toBe(2);
  });

  it('replays a DELETE even though the transaction is gone', async () => {
    const created = (await post(transactionBody())).json<{ data: TransactionView }>().data;
    const key = newKey();
    const first = await write('DELETE', created.id, key);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({
      data: `Transaction with ID: ${created.id} removed`,
      code: 200,
      message: 'Transaction deleted successfully',
    });
    expect((await get(created.id)).statusCode).toBe(404);

    const replay = await write('DELETE', created.id, key);
    expectReplayOf(replay, first);

    // Without the key, the same delete now finds nothing.
    const again = await write('DELETE', created.id, undefined);
    expect(again.statusCode).toBe(404);
    expect(errorOf(again).code).toBe('TRANSACTION_NOT_FOUND');
  });
});

describe('requests that fail store nothing', () => {
  it('a 404 update is answered 404 again, not replayed', async () => {
    const key = newKey();
    const unknownId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await write('PUT', unknownId, key, { description: 'nope' });
      expect(res.statusCode).toBe(404);
      expect(errorOf(res).code).toBe('TRANSACTION_NOT_FOUND');
      expect(errorOf(res).message).toBe(`Transaction not found for ID: ${unknownId}`);
      expect(res.headers['idempotent-replayed']).toBeUndefined();
    }
    expect(await countKeyRows(key)).toBe(0);
  });

  it('a 404 delete leaves the key free for a different request', async () => {
    const key = newKey();
    const missing = await write('DELETE', '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c', key);
    expect(missing.statusCode).toBe(404);
    expect(await countKeyRows(key)).toBe(0);
  });

  it('a body refused by the schema (422) leaves no key row', async () => {
    const key = newKey();
    const userId = uniqueUserId('invalid');
    const res = await post(transactionBody({ user_id: userId, transaction_type: 'refund' }), key);
    expect(res.statusCode).toBe(422);
    expect(errorOf(res).code).toBe('VALIDATION_FAILED');
    expect(await countKeyRows(key)).toBe(0);
    expect(await countTransactions(userId)).toBe(0);
  });

  it('a body refused by the service rules (422) leaves no key row, so the key can be used again', async () => {
    const key = newKey();
    const userId = uniqueUserId('rules');
    const refused = await post(transactionBody({ user_id: userId, currency: 'XYZ' }), key);
    expect(refused.statusCode).toBe(422);
    expect(errorOf(refused).detail?.map((issue) => issue.loc)).toContainEqual(['body', 'currency']);
    expect(await countKeyRows(key)).toBe(0);
    expect(await countTransactions(userId)).toBe(0);

    // The corrected request with the same key is a first request, not a reuse.
    const corrected = await post(transactionBody({ user_id: userId, currency: 'GHS' }), key);
    expect(corrected.statusCode).toBe(201);
    expect(corrected.headers['idempotent-replayed']).toBeUndefined();
    expect(await countKeyRows(key)).toBe(1);
    expect(await countTransactions(userId)).toBe(1);
  });
});

describe('the Idempotency-Key header', () => {
  it.each([
    ['300 characters', 'k'.repeat(300)],
    ['256 characters', 'k'.repeat(256)],
    ['a space', 'has space'],
    ['empty', ''],
    ['a tab', 'tab\there'],
  ])('is refused with 422 when it is %s, and nothing is written', async (_label, key) => {
    const userId = uniqueUserId('bad-key');
    const res = await post(transactionBody({ user_id: userId }), key);
    expect(res.statusCode).toBe(422);
    const error = errorOf(res);
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.detail?.map((issue) => issue.loc)).toContainEqual(['header', 'idempotency-key']);
    expect(await countTransactions(userId)).toBe(0);
  });

  it('is refused on updates and deletes too', async () => {
    const created = (await post(transactionBody())).json<{ data: TransactionView }>().data;
    for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
      const res = await write(
        method,
        created.id,
        'bad key',
        method === 'DELETE' ? undefined : { description: 'x' },
      );
      expect(res.statusCode, method).toBe(422);
      expect(errorOf(res).detail?.map((issue) => issue.loc)).toContainEqual([
        'header',
        'idempotency-key',
      ]);
    }
    const read = await get(created.id);
    expect(read.statusCode).toBe(200);
    expect(read.json<{ data: TransactionView }>().data.version).toBe(1);
  });

  it('accepts 255 printable ASCII characters', async () => {
    const key = `${randomUUID()}${'~!'.repeat(200)}`.slice(0, 255);
    expect(key).toHaveLength(255);
    const body = transactionBody();
    const first = await post(body, key);
    expect(first.statusCode).toBe(201);
    const replay = await post(body, key);
    expectReplayOf(replay, first);
  });
});

describe('expiry', () => {
  it('a scheduled job deletes expired keys in bounded batches and keeps live ones', async () => {
    const live = newKey();
    expect((await post(transactionBody(), live)).statusCode).toBe(201);
    await context.database.handle.db.execute(sql`
      insert into idempotency_keys (scope, key, request_hash, response_status, response_headers,
        response_body, created_at, expires_at)
      select 'anonymous', 'expired-' || g, 'x', 201, '{}'::jsonb, 'x', now() - interval '2 days',
        now() - interval '1 day'
      from generate_series(1, 2500) g`);
    const deleted = await expireIdempotencyKeys(context.database.handle.db);
    expect(deleted).toBe(2500);
    const [left] = await queryRows<{ n: number; live: number }>(
      context.database.handle.db,
      sql`select count(*)::int as n, count(*) filter (where key = ${live})::int as live from idempotency_keys`,
    );
    expect(left).toMatchObject({ live: 1 });
    expect(await expireIdempotencyKeys(context.database.handle.db)).toBe(0);
  });
});
