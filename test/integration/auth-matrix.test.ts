import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../helpers/app.js';
import { bearer, createAs, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';
import { sql } from 'drizzle-orm';
import { relayEvents } from '../../src/modules/events/outbox.js';
import { SCOPES, USER_SCOPES, type AccessRoute, type Scope } from '../../src/platform/auth.js';
import { queryRows } from '../../src/db/client.js';
import { eventually } from '../helpers/webhook-receiver.js';

/*
 * The authorization matrix: every route the app registered × every kind of caller → the status
 * that caller sees. The routes come from the app itself (app.accessRoutes, filled as routes are
 * registered), so a route added later without an example below fails this file, and one added
 * without config.access never builds at all.
 */

/** What a test needs to aim a request at real data: user A's transaction, a key to revoke. */
interface Fixture {
  owner: string;
  transactionId: string;
  keyId: string;
  /** A webhook with one delivery (of the owner's transaction), for webhook routes only. */
  webhookId: string;
  deliveryId: string;
}

interface Example {
  url: (fixture: Fixture) => string;
  payload?: (fixture: Fixture) => Record<string, unknown>;
  /** The status of a caller who is allowed (for HEAD, the GET route's). */
  ok: number;
}

const EXAMPLES: Record<string, Example> = {
  'GET /': { url: () => '/', ok: 200 },
  'GET /healthz': { url: () => '/healthz', ok: 200 },
  'GET /readyz': { url: () => '/readyz', ok: 200 },
  'GET /metrics': { url: () => '/metrics', ok: 200 },
  'GET /openapi.json': { url: () => '/openapi.json', ok: 200 },
  'GET /docs': { url: () => '/docs', ok: 200 },
  'HEAD /docs/': { url: () => '/docs/', ok: 200 },
  'GET /docs/json': { url: () => '/docs/json', ok: 200 },
  'GET /docs/yaml': { url: () => '/docs/yaml', ok: 200 },
  // Swagger UI sends its old index address to /docs.
  'GET /docs/static/index.html': { url: () => '/docs/static/index.html', ok: 302 },
  'GET /docs/static/swagger-initializer.js': {
    url: () => '/docs/static/swagger-initializer.js',
    ok: 200,
  },
  'GET /docs/static/*': { url: () => '/docs/static/swagger-ui.css', ok: 200 },
  'POST /api/v1/transaction/': {
    url: () => '/api/v1/transaction/',
    payload: (f) => transactionBody({ user_id: f.owner }),
    ok: 201,
  },
  'POST /api/v1/transaction': {
    url: () => '/api/v1/transaction',
    payload: (f) => transactionBody({ user_id: f.owner }),
    ok: 201,
  },
  'GET /api/v1/transaction/:id': { url: (f) => `/api/v1/transaction/${f.transactionId}`, ok: 200 },
  'PUT /api/v1/transaction/:id': {
    url: (f) => `/api/v1/transaction/${f.transactionId}`,
    payload: () => ({ description: 'changed' }),
    ok: 200,
  },
  'PATCH /api/v1/transaction/:id': {
    url: (f) => `/api/v1/transaction/${f.transactionId}`,
    payload: () => ({ transaction_amount: 7 }),
    ok: 200,
  },
  'DELETE /api/v1/transaction/:id': {
    url: (f) => `/api/v1/transaction/${f.transactionId}`,
    ok: 200,
  },
  'GET /api/v1/transaction/history/:user_id': {
    url: (f) => `/api/v1/transaction/history/${encodeURIComponent(f.owner)}`,
    ok: 200,
  },
  'GET /api/v1/analytics/:user_id': {
    url: (f) => `/api/v1/analytics/${encodeURIComponent(f.owner)}`,
    ok: 200,
  },
  'GET /api/v1/analytics/range/:user_id': {
    url: (f) => `/api/v1/analytics/range/${encodeURIComponent(f.owner)}`,
    ok: 200,
  },
  'POST /api/v1/api-keys': {
    url: () => '/api/v1/api-keys',
    payload: () => ({ name: 'made-in-matrix', scopes: ['transactions:read'] }),
    ok: 201,
  },
  'GET /api/v1/api-keys': { url: () => '/api/v1/api-keys', ok: 200 },
  'GET /api/v1/api-keys/:id': { url: (f) => `/api/v1/api-keys/${f.keyId}`, ok: 200 },
  'DELETE /api/v1/api-keys/:id': { url: (f) => `/api/v1/api-keys/${f.keyId}`, ok: 200 },
  'GET /api/v1/events': {
    url: (f) => `/api/v1/events?user_id=${encodeURIComponent(f.owner)}`,
    ok: 200,
  },
  'POST /api/v1/webhooks': {
    url: () => '/api/v1/webhooks',
    payload: () => ({ url: 'http://127.0.0.1:9/matrix', active: false }),
    ok: 201,
  },
  'GET /api/v1/webhooks': { url: () => '/api/v1/webhooks', ok: 200 },
  'GET /api/v1/webhooks/:id': { url: (f) => `/api/v1/webhooks/${f.webhookId}`, ok: 200 },
  'PATCH /api/v1/webhooks/:id': {
    url: (f) => `/api/v1/webhooks/${f.webhookId}`,
    payload: () => ({ description: 'changed' }),
    ok: 200,
  },
  'DELETE /api/v1/webhooks/:id': { url: (f) => `/api/v1/webhooks/${f.webhookId}`, ok: 200 },
  'POST /api/v1/webhooks/:id/rotate-secret': {
    url: (f) => `/api/v1/webhooks/${f.webhookId}/rotate-secret`,
    ok: 200,
  },
  'GET /api/v1/webhooks/:id/deliveries': {
    url: (f) => `/api/v1/webhooks/${f.webhookId}/deliveries`,
    ok: 200,
  },
  'GET /api/v1/webhooks/:id/deliveries/:delivery_id': {
    url: (f) => `/api/v1/webhooks/${f.webhookId}/deliveries/${f.deliveryId}`,
    ok: 200,
  },
  // Nothing listens on port 9: the attempt fails fast, and is logged (200 with the delivery).
  'POST /api/v1/webhooks/:id/deliveries/:delivery_id/redeliver': {
    url: (f) => `/api/v1/webhooks/${f.webhookId}/deliveries/${f.deliveryId}/redeliver`,
    ok: 200,
  },
};

const CASES = [
  'no credentials',
  'wrong key',
  'revoked key',
  'expired key',
  'key lacking the scope',
  'key with the scope',
  'user token for the owner',
  'user token for another user',
] as const;
type Case = (typeof CASES)[number];

/** The status a caller of `kind` must see on a route with this access. */
function expectedStatus(route: AccessRoute, kind: Case, ok: number): number {
  const { access } = route;
  if (access === 'public') return ok;
  switch (kind) {
    case 'no credentials':
    case 'wrong key':
    case 'revoked key':
    case 'expired key':
      return 401;
    case 'key lacking the scope':
      return 403;
    case 'key with the scope':
      return ok;
    case 'user token for the owner':
      return access.owner !== undefined && USER_SCOPES.has(access.scope) ? ok : 404;
    case 'user token for another user':
      return 404;
  }
}

const CODES: Record<number, string> = {
  401: 'UNAUTHENTICATED',
  403: 'INSUFFICIENT_SCOPE',
};

let database: TestDatabase;
let app: FastifyInstance;
let admin: string;
const credentials = {} as Record<'wrong' | 'revoked' | 'expired', string>;
const byScope = new Map<Scope, { has: string; lacks: string }>();

beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildTestApp(database, { env: REQUIRED_AUTH_ENV });
  admin = (await createKey(database, ['admin'], { name: 'matrix-admin' })).key;
  const real = await createKey(database, [...SCOPES]);
  // The right id with a wrong secret: the closest a guess can get.
  credentials.wrong = `${real.key.slice(0, -6)}AAAAAA`;
  credentials.revoked = (await createKey(database, [...SCOPES], { revoked: true })).key;
  credentials.expired = (await createKey(database, [...SCOPES], { expired: true })).key;
  for (const scope of SCOPES) {
    const others = SCOPES.filter((s) => s !== scope && s !== 'admin');
    byScope.set(scope, {
      has: (await createKey(database, [scope])).key,
      lacks: (await createKey(database, others)).key,
    });
  }
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

/** Fresh data for every request: a write that succeeds must not spoil the next case. */
async function fixture(route: AccessRoute): Promise<Fixture> {
  const owner = uniqueUserId('owner');
  let webhookId = '';
  if (route.url.startsWith('/api/v1/webhooks')) {
    const hook = await app.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      headers: bearer(admin),
      payload: { url: 'http://127.0.0.1:9/matrix' },
    });
    webhookId = hook.json<{ data: { id: string } }>().data.id;
  }
  const created = await createAs(app, admin, transactionBody({ user_id: owner }));
  const { id: keyId } = await createKey(database, ['transactions:read'], { name: 'target' });
  let deliveryId = '';
  if (webhookId) {
    const db = database.handle.db;
    // On a shared server the event may wait for others' transactions to end before it relays.
    deliveryId = await eventually(
      async () => {
        await relayEvents(db, { batchSize: 1_000, retryWindowMs: 3_600_000 });
        const [delivery] = await queryRows<{ id: string }>(
          db,
          sql`select id from deliveries where webhook_id = ${webhookId}`,
        );
        return delivery?.id;
      },
      { timeoutMs: 60_000, what: "the webhook's delivery" },
    );
  }
  return { owner, transactionId: created.id, keyId, webhookId, deliveryId };
}

/** Webhooks made for one case are deleted after it, so they stay below WEBHOOK_MAX_ENDPOINTS. */
async function cleanUp(): Promise<void> {
  await database.handle.db.execute(sql`delete from webhooks`);
}

async function credentialFor(route: AccessRoute, kind: Case, f: Fixture): Promise<string | null> {
  const scope = route.access === 'public' ? 'transactions:read' : route.access.scope;
  switch (kind) {
    case 'no credentials':
      return null;
    case 'wrong key':
      return credentials.wrong;
    case 'revoked key':
      return credentials.revoked;
    case 'expired key':
      return credentials.expired;
    case 'key lacking the scope':
      return byScope.get(scope)!.lacks;
    case 'key with the scope':
      return byScope.get(scope)!.has;
    case 'user token for the owner':
      return userToken(f.owner);
    case 'user token for another user':
      return userToken(uniqueUserId('stranger'));
  }
}

describe('authorization matrix', () => {
  it('covers every route the app registered, each with an example here', () => {
    const missing = app.accessRoutes
      .filter((route) => exampleFor(route) === undefined)
      .map((route) => `${route.method} ${route.url}`);
    expect(missing, 'routes without an example in EXAMPLES').toEqual([]);
    expect(app.accessRoutes.length).toBeGreaterThan(20);
  });

  // About 250 cases, each on fresh data: ~20 s on an idle machine, several times that under load.
  it('answers every route × caller with the expected status', { timeout: 600_000 }, async () => {
    const failures: string[] = [];
    let checked = 0;
    for (const route of app.accessRoutes) {
      const example = exampleFor(route);
      if (!example) continue; // reported by the test above
      for (const kind of CASES) {
        const f = await fixture(route);
        const credential = await credentialFor(route, kind, f);
        const response = await app.inject({
          method: route.method as 'GET',
          url: example.url(f),
          headers: credential ? bearer(credential) : {},
          ...(example.payload ? { payload: example.payload(f) } : {}),
        });
        await cleanUp();
        const want = expectedStatus(route, kind, example.ok);
        checked += 1;
        const label = `${route.method} ${route.url} × ${kind}`;
        if (response.statusCode !== want) {
          failures.push(`${label}: ${response.statusCode} (want ${want}) ${response.body}`);
          continue;
        }
        const code = CODES[want];
        if (code && route.method !== 'HEAD') {
          if (response.json().code !== code) failures.push(`${label}: code ${response.body}`);
          if (!String(response.headers['www-authenticate']).startsWith('Bearer')) {
            failures.push(`${label}: no WWW-Authenticate: Bearer`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBe(app.accessRoutes.length * CASES.length);
  });
});

function exampleFor(route: AccessRoute): Example | undefined {
  return (
    EXAMPLES[`${route.method} ${route.url}`] ??
    (route.method === 'HEAD' ? EXAMPLES[`GET ${route.url}`] : undefined)
  );
}
