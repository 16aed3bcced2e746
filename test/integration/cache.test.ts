import { describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { memoryStore, type CacheStore } from '../../src/platform/cache.js';
import { queryRows } from '../../src/db/client.js';
import { Analytics, RangeAnalytics } from '../../src/modules/analytics/analytics.schemas.js';
import { buildTestApp, postTransaction, useTestApp } from '../helpers/app.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';
import { eventually } from '../helpers/webhook-receiver.js';

const context = useTestApp();

const create = (overrides: Record<string, unknown>) => postTransaction(context.app, overrides);

const get = async (url: string, headers: Record<string, string> = {}) =>
  context.app.inject({ method: 'GET', url, headers });

const metric = async (name: string) => {
  const text = (await get('/metrics')).body;
  const match = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  return Number(match?.[1] ?? 0);
};

describe('read, write, read again', () => {
  it('history and analytics reflect a create, an update and a delete at once', async () => {
    const userId = uniqueUserId();
    const first = await create({ user_id: userId, transaction_amount: 10 });
    const historyUrl = `/api/v1/transaction/history/${userId}`;
    const analyticsUrl = `/api/v1/analytics/${userId}`;
    const rangeUrl = `/api/v1/analytics/range/${userId}?start_date=2024-01-01`;
    const read = async () => ({
      ids: (await get(historyUrl)).json().data.map((t: { id: string }) => t.id),
      total: (await get(analyticsUrl)).json().data?.credit_total,
      range: (await get(rangeUrl)).json().data?.transaction_count,
    });

    expect(await read()).toEqual({ ids: [first.id], total: 10, range: 1 });
    const hitsBefore = await metric('fido_cache_hits_total');
    expect(await read()).toEqual({ ids: [first.id], total: 10, range: 1 });
    expect(await metric('fido_cache_hits_total')).toBeGreaterThanOrEqual(hitsBefore + 3);

    const second = await create({
      user_id: userId,
      transaction_amount: 5,
      transaction_date: '2024-10-09T00:00:00Z',
    });
    expect(await read()).toEqual({ ids: [first.id, second.id], total: 15, range: 2 });

    await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${second.id}`,
      payload: { transaction_amount: 7 },
    });
    expect(await read()).toEqual({ ids: [first.id, second.id], total: 17, range: 2 });

    await context.app.inject({ method: 'DELETE', url: `/api/v1/transaction/${first.id}` });
    expect(await read()).toEqual({ ids: [second.id], total: 7, range: 1 });
  });

  it('answers 304 to a matching If-None-Match on records, history pages and analytics', async () => {
    const userId = uniqueUserId();
    const { id } = await create({ user_id: userId });
    for (const url of [
      `/api/v1/transaction/${id}`,
      `/api/v1/transaction/history/${userId}`,
      `/api/v1/analytics/${userId}`,
      `/api/v1/analytics/range/${userId}?end_date=2030-01-01`,
    ]) {
      const first = await get(url);
      const etag = first.headers.etag as string;
      expect(etag, url).toBeTruthy();
      const again = await get(url, { 'if-none-match': etag });
      expect(again.statusCode, url).toBe(304);
      expect(again.body).toBe('');
      const other = await get(url, { 'if-none-match': '"something-else", W/"x"' });
      expect(other.statusCode).toBe(200);
    }
    // A change makes the old tag stale.
    const history = `/api/v1/transaction/history/${userId}`;
    const before = (await get(history)).headers.etag as string;
    await create({ user_id: userId });
    expect((await get(history, { 'if-none-match': before })).statusCode).toBe(200);
  });
});

/** A store whose writes wait until the test lets them through. */
function gatedStore(): CacheStore & { holdWrites(): () => void; writes: number } {
  const inner = memoryStore(1_000);
  let gate: Promise<void> | undefined;
  const store = {
    ...inner,
    writes: 0,
    async write(...args: Parameters<CacheStore['write']>) {
      store.writes += 1;
      await gate;
      return inner.write(...args);
    },
    holdWrites() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
  return store;
}

describe('the stale reader', () => {
  it('a miss that read the database before a write commits is never served after it', async () => {
    const store = gatedStore();
    const app = await buildTestApp(context.database, { deps: { cacheStore: store } });
    try {
      const userId = uniqueUserId();
      const inject = (method: 'GET' | 'POST', url: string, payload?: object) =>
        app.inject({ method, url, ...(payload ? { payload } : {}) });
      await inject(
        'POST',
        '/api/v1/transaction/',
        transactionBody({ user_id: userId, transaction_amount: 1 }),
      );

      // The reader misses, reads the database (one transaction), and stalls before storing.
      const release = store.holdWrites();
      const writesBefore = store.writes;
      const staleRead = inject('GET', `/api/v1/analytics/${userId}`);
      while (store.writes === writesBefore) await new Promise((r) => setTimeout(r, 5));

      // A write commits meanwhile.
      const write = await inject(
        'POST',
        '/api/v1/transaction/',
        transactionBody({ user_id: userId, transaction_amount: 2 }),
      );
      expect(write.statusCode).toBe(201);

      // The stalled reader now stores what it read before the write.
      release();
      expect((await staleRead).json().data.transaction_count).toBe(1);

      // Nobody is served that entry.
      const after = await inject('GET', `/api/v1/analytics/${userId}`);
      expect(after.json().data).toMatchObject({ transaction_count: 2, credit_total: 3 });
    } finally {
      await app.close();
    }
  });

  it('concurrent misses for one key compute once', async () => {
    const store = gatedStore();
    const app = await buildTestApp(context.database, { deps: { cacheStore: store } });
    try {
      const userId = uniqueUserId();
      await app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        payload: transactionBody({ user_id: userId }),
      });
      const writesBefore = store.writes;
      const responses = await Promise.all(
        Array.from({ length: 10 }, () =>
          app.inject({ method: 'GET', url: `/api/v1/transaction/history/${userId}` }),
        ),
      );
      for (const response of responses) expect(response.statusCode).toBe(200);
      expect(new Set(responses.map((r) => r.body)).size).toBe(1);
      // One computation, hence one entry stored, shared by all ten misses.
      expect(store.writes).toBe(writesBefore + 1);
    } finally {
      await app.close();
    }
  });
});

describe('cached history pages', () => {
  it('serve the same bytes as the database, and the cache keeps them sealed', async () => {
    const values: Buffer[] = [];
    const inner = memoryStore(1_000);
    const store: CacheStore = {
      ...inner,
      async write(user, generation, entry, value, ttlSeconds) {
        values.push(value);
        return inner.write(user, generation, entry, value, ttlSeconds);
      },
    };
    const app = await buildTestApp(context.database, { deps: { cacheStore: store } });
    try {
      const userId = uniqueUserId();
      const names = ['Zéphyrine Okonkwo-Bérard', 'Kwame Mensah'];
      for (const [i, fullName] of names.entries()) {
        const created = await app.inject({
          method: 'POST',
          url: '/api/v1/transaction/',
          payload: transactionBody({
            user_id: userId,
            full_name: fullName,
            transaction_date: `2024-10-1${i}T09:00:00Z`,
          }),
        });
        expect(created.statusCode).toBe(201);
      }
      const url = `/api/v1/transaction/history/${userId}?limit=1`;
      const computed = await app.inject({ method: 'GET', url });
      const cached = await app.inject({ method: 'GET', url });
      expect(computed.statusCode).toBe(200);
      expect(cached.body).toBe(computed.body);
      expect(cached.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(cached.headers.etag).toBe(computed.headers.etag);
      expect(computed.json()).toMatchObject({
        data: [{ user_id: userId, full_name: names[1] }],
        code: 200,
        message: 'Transaction history retrieved successfully',
        pagination: { limit: 1, has_more: true },
      });

      // The next page, reached with the cached page's cursor, is the older transaction.
      const cursor = cached.json().pagination.next_cursor as string;
      const next = await app.inject({
        method: 'GET',
        url: `${url}&cursor=${encodeURIComponent(cursor)}`,
      });
      expect(next.json().data.map((t: { full_name: string }) => t.full_name)).toEqual([names[0]]);

      expect(values.length).toBeGreaterThanOrEqual(2);
      for (const value of values) {
        const bytes = value.toString('latin1');
        expect(bytes).toMatch(/^b1\./);
        for (const name of names) expect(value.includes(name)).toBe(false);
        expect(bytes).not.toContain(userId);
      }
    } finally {
      await app.close();
    }
  });
});

describe('cached analytics', () => {
  it("are the computed body, tag and type, byte for byte, fields in the schema's order", async () => {
    const userId = uniqueUserId();
    await create({ user_id: userId, transaction_amount: 12.5, transaction_type: 'credit' });
    await create({ user_id: userId, transaction_amount: 2.25, transaction_type: 'debit' });
    for (const [url, schema] of [
      [`/api/v1/analytics/${userId}`, Analytics],
      [`/api/v1/analytics/range/${userId}?start_date=2000-01-01`, RangeAnalytics],
    ] as const) {
      const hits = await metric('fido_cache_hits_total');
      const computed = await get(url);
      const cached = await get(url);
      expect(await metric('fido_cache_hits_total'), url).toBe(hits + 1);
      expect(computed.statusCode, url).toBe(200);
      expect(cached.body).toBe(computed.body);
      expect(cached.headers.etag).toBe(computed.headers.etag);
      for (const response of [computed, cached]) {
        expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
        expect(response.headers['content-length']).toBe(String(Buffer.byteLength(computed.body)));
      }
      // What the route's serializer wrote for the object: canonical JSON in the schema's order.
      const json = computed.json<{ data: Record<string, unknown> }>();
      expect(computed.body).toBe(JSON.stringify(json));
      expect(Object.keys(json)).toEqual(['data', 'code', 'message']);
      expect(Object.keys(json.data)).toEqual(Object.keys(schema.properties));
      expect(json).toMatchObject({
        code: 200,
        message: 'Transaction analytics retrieved successfully',
        data: { user_id: userId, credit_total: 12.5, debit_total: 2.25, net_total: 10.25 },
      });
    }
  });
});

describe('entries this version cannot read', () => {
  // An earlier version's entries (figures as JSON, pages sealed as text), or anything else under
  // a name this version reads: answered from the database, never an error.
  it('are answered from the database, the same bytes as from a clean cache', async () => {
    const inner = memoryStore(1_000);
    const foreign = [
      Buffer.from('{"user_id":"u","transaction_count":1}'),
      Buffer.from('v1.kabc.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
      Buffer.from('b1.kabc.\nnot a sealed page'),
      Buffer.from('W/"x"'),
      Buffer.alloc(0),
    ];
    let reading: Buffer | undefined;
    const store: CacheStore = {
      ...inner,
      async read(user, entry, ttlSeconds) {
        const found = await inner.read(user, entry, ttlSeconds);
        return reading === undefined ? found : { ...found, value: reading };
      },
    };
    const app = await buildTestApp(context.database, { deps: { cacheStore: store } });
    try {
      const userId = uniqueUserId();
      for (const fullName of ['Ama Owusu', 'Kofi Boateng']) {
        await postTransaction(app, { user_id: userId, full_name: fullName });
      }
      for (const url of [
        `/api/v1/analytics/${userId}`,
        `/api/v1/analytics/range/${userId}?end_date=2030-01-01`,
        `/api/v1/transaction/history/${userId}`,
        `/api/v1/transaction/history/${userId}?limit=1`,
      ]) {
        reading = undefined;
        const expected = await app.inject({ method: 'GET', url });
        expect(expected.statusCode, url).toBe(200);
        for (const value of foreign) {
          reading = value;
          const response = await app.inject({ method: 'GET', url });
          expect(response.statusCode, url).toBe(200);
          expect(response.body, url).toBe(expected.body);
          expect(response.headers.etag, url).toBe(expected.headers.etag);
        }
      }
    } finally {
      await app.close();
    }
  });
});

describe('shutdown', () => {
  it('closes the cache only after requests in flight have invalidated it', async () => {
    const inner = memoryStore(100);
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const store: CacheStore = {
      ...inner,
      async bump(user, ttl) {
        await gate;
        calls.push('bump');
        return inner.bump(user, ttl);
      },
      async close() {
        calls.push('close');
        return inner.close();
      },
    };
    const app = await buildTestApp(context.database, { deps: { cacheStore: store } });
    const body = transactionBody();
    const write = app.inject({ method: 'POST', url: '/api/v1/transaction/', payload: body });
    // Wait until the write has committed: it then waits on its (gated) invalidation.
    await eventually(
      async () => {
        const rows = await queryRows<{ n: number }>(
          context.database.handle.db,
          sql`select count(*)::int as n from transactions where user_id = ${String(body.user_id)}`,
        );
        return rows[0]?.n === 1 ? true : undefined;
      },
      { what: 'the write to commit', timeoutMs: 30_000, intervalMs: 10 },
    );
    const closing = app.close();
    // Time for a close that did not wait to reach the store (it would record 'close' first).
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    expect((await write).statusCode).toBe(201);
    await closing;
    expect(calls).toEqual(['bump', 'close']);
  });
});
