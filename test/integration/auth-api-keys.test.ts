import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV } from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

const context = useTestApp({ env: REQUIRED_AUTH_ENV });

async function adminKey(): Promise<string> {
  return (await createKey(context.database, ['admin'])).key;
}

describe('/api/v1/api-keys', () => {
  it('creates a key shown once, which then works with exactly its scopes', async () => {
    const admin = await adminKey();
    const created = await context.app.inject({
      method: 'POST',
      url: '/api/v1/api-keys',
      headers: bearer(admin),
      payload: { name: 'billing', scopes: ['transactions:read'], expires_in_days: 30 },
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const { data } = created.json();
    expect(data).toMatchObject({
      name: 'billing',
      scopes: ['transactions:read'],
      status: 'active',
      revoked_at: null,
      last_used_at: null,
    });
    expect(data.key).toMatch(new RegExp(`^fido_${data.id}_[A-Za-z0-9_-]{43}$`));
    const days = (Date.parse(data.expires_at) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);

    const read = await context.app.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/nobody',
      headers: bearer(data.key),
    });
    expect(read.statusCode).toBe(404);
    const write = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      headers: bearer(data.key),
      payload: transactionBody(),
    });
    expect(write.statusCode).toBe(403);
    expect(write.headers['www-authenticate']).toBe(
      'Bearer realm="fido", error="insufficient_scope", scope="transactions:write"',
    );

    // Listed and read back without its secret; its use is recorded.
    const one = await context.app.inject({
      method: 'GET',
      url: `/api/v1/api-keys/${data.id}`,
      headers: bearer(admin),
    });
    expect(one.json().data.last_used_at).toEqual(expect.any(String));
    const list = await context.app.inject({
      method: 'GET',
      url: '/api/v1/api-keys?limit=500',
      headers: bearer(admin),
    });
    expect(list.statusCode).toBe(200);
    expect(list.json().data.map((key: { id: string }) => key.id)).toContain(data.id);
    const secret = data.key.split('_').slice(2).join('_');
    expect(list.body).not.toContain(secret);
    expect(one.body).not.toContain(secret);
  });

  it('revokes a key: it stops working at once, and stays listed as revoked', async () => {
    const admin = await adminKey();
    const { id, key } = await createKey(context.database, ['transactions:read']);
    const use = () =>
      context.app.inject({
        method: 'GET',
        url: '/api/v1/transaction/history/nobody',
        headers: bearer(key),
      });
    expect((await use()).statusCode).toBe(404);
    const revoked = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/api-keys/${id}`,
      headers: bearer(admin),
    });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().data).toMatchObject({ id, status: 'revoked' });
    expect((await use()).statusCode).toBe(401);
    const again = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/api-keys/${id}`,
      headers: bearer(admin),
    });
    expect(again.json().data.revoked_at).toBe(revoked.json().data.revoked_at);
    const unknown = await context.app.inject({
      method: 'DELETE',
      url: '/api/v1/api-keys/nosuchkey',
      headers: bearer(admin),
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('API_KEY_NOT_FOUND');
  });

  it('pages through keys with limit and cursor', async () => {
    const admin = await adminKey();
    for (let i = 0; i < 3; i += 1) await createKey(context.database, ['analytics:read']);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 100; page += 1) {
      const response: { json(): any } = await context.app.inject({
        method: 'GET',
        url: `/api/v1/api-keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: bearer(admin),
      });
      const body: {
        data: { id: string }[];
        pagination: { next_cursor: string | null; has_more: boolean };
      } = response.json();
      expect(body.data.length).toBeLessThanOrEqual(2);
      seen.push(...body.data.map((key: { id: string }) => key.id));
      cursor = body.pagination.next_cursor;
      if (!body.pagination.has_more) break;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(4);
  });

  it('refuses empty or unknown scopes and bad lifetimes (422)', async () => {
    const admin = await adminKey();
    for (const payload of [
      { name: 'x', scopes: [] },
      { name: 'x', scopes: ['everything'] },
      { name: '', scopes: ['admin'] },
      { name: 'x', scopes: ['admin'], expires_in_days: 0 },
    ]) {
      const response = await context.app.inject({
        method: 'POST',
        url: '/api/v1/api-keys',
        headers: bearer(admin),
        payload,
      });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
    }
  });
});

describe('scopes and callers', () => {
  it('admin holds every scope', async () => {
    const admin = await adminKey();
    const response = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      headers: bearer(admin),
      payload: transactionBody(),
    });
    expect(response.statusCode).toBe(201);
  });

  it('scopes Idempotency-Key to the caller: another key never gets a replay', async () => {
    const first = (await createKey(context.database, ['transactions:write'])).key;
    const second = (await createKey(context.database, ['transactions:write'])).key;
    const body = transactionBody({ user_id: uniqueUserId() });
    const post = (key: string) =>
      context.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { ...bearer(key), 'idempotency-key': 'shared-key-1' },
        payload: body,
      });
    const a = await post(first);
    const replay = await post(first);
    const b = await post(second);
    expect(a.statusCode).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(b.statusCode).toBe(201);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect(b.json().data.id).not.toBe(a.json().data.id);
  });

  it('refuses an Authorization header that is not a bearer credential', async () => {
    const admin = await adminKey();
    const response = await context.app.inject({
      method: 'GET',
      url: '/api/v1/api-keys',
      headers: { authorization: `Basic ${admin}` },
    });
    expect(response.statusCode).toBe(401);
    // Refused before any handler, still with the security headers.
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['content-security-policy']).toContain("default-src 'none'");
  });
});
