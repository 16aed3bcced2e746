import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { SignJWT } from 'jose';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  postTransaction,
  type TestDatabase,
} from '../helpers/app.js';
import {
  bearer,
  createKey,
  REQUIRED_AUTH_ENV,
  TEST_JWT_SECRET,
  userToken,
} from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';
import { eventually } from '../helpers/webhook-receiver.js';
import {
  checkResolvedHost,
  isPublicAddress,
  isSpecialUseName,
} from '../../src/modules/webhooks/sender.js';

/*
 * Regression tests for the defects an adversarial test pass found (issue 12, defects 1-12): each
 * `describe` is one defect, and each failed on the code before its fix.
 */

let database: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildTestApp(database);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

function create(payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: payload as object,
    headers,
  });
}

/** `depth` arrays, one inside the other, as JSON text (never built as an object: no recursion). */
function nestedArrays(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

function expectValidationAt(response: { statusCode: number; json: () => unknown }, loc: unknown[]) {
  expect(response.statusCode).toBe(422);
  const body = response.json() as { detail?: { loc: unknown[] }[] };
  expect(body.detail?.map((issue) => issue.loc)).toContainEqual(loc);
}

describe('defect 1: metadata is flat and bounded whatever its keys are made of', () => {
  const separators = ['\u2028', '\u2029', '\n', 'x'];

  it.each(separators)('refuses a nested value under a key holding %j', async (sep) => {
    const key = `a${sep}b`;
    const response = await create(transactionBody({ metadata: { [key]: { nested: 'x' } } }));
    expect(response.statusCode).toBe(422);
  });

  it('refuses an oversized value, NUL and a lone surrogate under a U+2028 key (never a 500)', async () => {
    for (const value of ['x'.repeat(40_000), 'a\u0000b', 'a\ud800b', [[['deep']]]]) {
      const response = await create(transactionBody({ metadata: { 'k\u2028': value } }));
      expect(response.statusCode, JSON.stringify(value).slice(0, 40)).toBe(422);
    }
  });

  it('refuses the same on PATCH', async () => {
    const created = await postTransaction(app);
    const response = await app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      payload: { metadata: { 'k\u2029': { nested: true } } },
    });
    expect(response.statusCode).toBe(422);
  });

  it('still stores flat metadata, a U+2028 inside a key included, and shows it in every view', async () => {
    const userId = uniqueUserId();
    const metadata = { plain: 'v', 'line\u2028sep': 'w' };
    const created = await postTransaction(app, { user_id: userId, metadata });
    expect(created.metadata).toEqual(metadata);
    const history = await app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}`,
    });
    expect(history.json<{ data: { metadata: unknown }[] }>().data[0]?.metadata).toEqual(metadata);
  });
});

describe('defect 2: nesting depth is bounded before any recursive walk', () => {
  it.each([
    ['without', {}],
    ['with', { 'idempotency-key': 'deep-nesting-1' }],
  ])('answers 422, not 500, to a 10,000-deep body %s an Idempotency-Key', async (_label, extra) => {
    const payload = `{"user_id":"u","junk":${nestedArrays(10_000)}}`;
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      headers: { 'content-type': 'application/json', ...extra },
      payload,
    });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({ code: 'MALFORMED_JSON' });
  });

  it('answers 422 on PATCH with an Idempotency-Key too', async () => {
    const created = await postTransaction(app);
    const response = await app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      headers: { 'content-type': 'application/json', 'idempotency-key': 'deep-nesting-2' },
      payload: `{"description":"x","junk":${nestedArrays(7_000)}}`,
    });
    expect(response.statusCode).toBe(422);
  });

  it('still accepts a body of ordinary depth with unknown nested keys', async () => {
    const response = await create(
      { ...transactionBody(), extra: { a: { b: { c: [1, [2, [3]]] } } } },
      { 'idempotency-key': 'ordinary-depth-1' },
    );
    expect(response.statusCode).toBe(201);
  });
});

describe('defect 3: a NUL in any path or query parameter answers 4xx, never 500', () => {
  const NUL = '%00';

  it('refuses it in every path parameter of every route', async () => {
    const withParams = app.accessRoutes.filter((route) => route.url.includes(':'));
    expect(withParams.length).toBeGreaterThan(8);
    for (const route of withParams) {
      if (route.method === 'HEAD') continue;
      const url = route.url.replace(/:[a-z_]+/g, `a${NUL}b`);
      const response = await app.inject({
        method: route.method as 'GET',
        url,
        ...(['POST', 'PATCH', 'PUT'].includes(route.method) ? { payload: {} } : {}),
      });
      expect(response.statusCode, `${route.method} ${url}: ${response.body}`).toBeLessThan(500);
    }
  });

  it('answers 422 naming the parameter on analytics, range analytics and api-keys', async () => {
    for (const [method, url] of [
      ['GET', `/api/v1/analytics/a${NUL}b`],
      ['GET', `/api/v1/analytics/range/a${NUL}b`],
      ['GET', `/api/v1/api-keys/a${NUL}b`],
      ['DELETE', `/api/v1/api-keys/a${NUL}b`],
    ] as const) {
      const response = await app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}`).toBe(422);
      expect(JSON.stringify(response.json())).toMatch(/"path"/);
    }
  });

  it('refuses it in query parameters (the api-keys cursor, analytics, history and feed)', async () => {
    for (const url of [
      `/api/v1/api-keys?cursor=a${NUL}b`,
      `/api/v1/analytics/someone?currency=GH${NUL}`,
      `/api/v1/analytics/range/someone?start_date=2024${NUL}`,
      `/api/v1/transaction/history/someone?cursor=a${NUL}b`,
      `/api/v1/events?after=a${NUL}b`,
      `/api/v1/webhooks/00000000-0000-7000-8000-000000000000/deliveries?cursor=a${NUL}b`,
    ]) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, `${url}: ${response.body}`).toBe(422);
    }
  });
});

describe('defect 4: a user token whose sub is not a non-empty string is refused', () => {
  let strict: FastifyInstance;
  beforeAll(async () => {
    strict = await buildTestApp(database, { env: REQUIRED_AUTH_ENV });
  });
  afterAll(async () => {
    await strict?.close();
  });

  async function tokenWithSubject(sub: unknown): Promise<string> {
    return new SignJWT({ sub } as Record<string, unknown>)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
  }

  it.each([[['bob']], [['a', 'b']], [123], [true], [{}], [''], [null]])(
    'answers 401 to sub %j',
    async (sub) => {
      const response = await strict.inject({
        method: 'GET',
        url: '/api/v1/transaction/history/bob',
        headers: bearer(await tokenWithSubject(sub)),
      });
      expect(response.statusCode).toBe(401);
    },
  );

  it('still lets a string sub read its own data', async () => {
    const response = await strict.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/bob',
      headers: bearer(await userToken('bob')),
    });
    // bob has no transactions: the old service's 404, past authentication.
    expect(response.statusCode).toBe(404);
  });
});

describe('defect 7: webhook secrets are never cached', () => {
  it('sends Cache-Control: no-store on create and on rotate-secret', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      payload: { url: 'https://receiver.example/hook' },
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const { id } = created.json<{ data: { id: string } }>().data;
    const rotated = await app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${id}/rotate-secret`,
    });
    expect(rotated.statusCode).toBe(200);
    expect(rotated.headers['cache-control']).toBe('no-store');
  });
});

describe('defect 8: the request log holds no credentials from the query string', () => {
  it('logs the path and a redacted query', async () => {
    const { logger, lines } = captureLogs('info');
    const logged = await buildTestApp(database, { deps: { logger } });
    try {
      const secrets = ['fido_k1_SECRETVALUE1', 'eyJSECRETJWT.x.y', 'SECRETKEY3', 'SECRETTOK4'];
      await logged.inject({
        method: 'GET',
        url:
          `/api/v1/transaction/history/someone?access_token=${secrets[0]}&api_key=${secrets[1]}` +
          `&apikey=${secrets[2]}&Token=${secrets[3]}&limit=5`,
      });
      const completed = lines.filter((line) => line.includes('request completed'));
      expect(completed).toHaveLength(1);
      for (const secret of secrets) expect(lines.join('\n')).not.toContain(secret);
      const entry = JSON.parse(completed[0]!) as { url: string };
      expect(entry.url).toMatch(/^\/api\/v1\/transaction\/history\/someone\?/);
      expect(entry.url).toContain('limit=5');
      expect(entry.url).toContain('access_token=[redacted]');
    } finally {
      await logged.close();
    }
  });
});

describe('defect 12: the documented CSP, and bodies that are not UTF-8', () => {
  it("sends exactly default-src 'none'; frame-ancestors 'none' on API answers", async () => {
    for (const url of ['/', '/healthz', '/api/v1/transaction/history/nobody']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.headers['content-security-policy']).toBe(
        "default-src 'none'; frame-ancestors 'none'",
      );
    }
  });

  it('keeps the docs page its own policy', async () => {
    const docs = await app.inject({ method: 'GET', url: '/docs' });
    expect(String(docs.headers['content-security-policy'])).toContain("script-src 'self'");
  });

  it('refuses invalid UTF-8 in a JSON body with 422 naming the field, never storing U+FFFD', async () => {
    const userId = uniqueUserId();
    const json = JSON.stringify(transactionBody({ user_id: userId, description: 'ab__cd' }));
    const bytes = Buffer.from(json, 'utf8');
    const at = bytes.indexOf('__');
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      headers: { 'content-type': 'application/json' },
      payload: bytes,
    });
    expectValidationAt(response, ['body', 'description']);
    const history = await app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}`,
    });
    expect(history.statusCode).toBe(404);
  });

  it('still accepts a correctly encoded U+FFFD and other non-ASCII text', async () => {
    const created = await postTransaction(app, {
      description: 'r\u00e9sum\u00e9 \ufffd \u{1f600}',
    });
    expect(created.description).toBe('r\u00e9sum\u00e9 \ufffd \u{1f600}');
  });
});

describe('defect 9: a client that disconnects mid-body is not a database outage', () => {
  it('logs the disconnect as the client’s, never "database unavailable"', async () => {
    const { logger, lines } = captureLogs('info');
    const served = await buildTestApp(database, { deps: { logger } });
    try {
      const address = await served.listen({ port: 0, host: '127.0.0.1' });
      const { port } = new URL(address);
      // Node parsed the request's head and handed it to Fastify: now the body is being read.
      const arrived = new Promise<void>((resolve) =>
        served.server.once('request', () => resolve()),
      );
      const socket = net.connect({ port: Number(port), host: '127.0.0.1' });
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        'POST /api/v1/transaction/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          'Content-Length: 1000\r\n\r\n{"user_id": "half',
      );
      await arrived;
      socket.destroy();
      const ended = await eventually(
        () => lines.find((line) => /client closed|database unavailable/.test(line)),
        { what: 'the abandoned request to be logged' },
      );
      expect(ended).toContain('client closed');
      expect(lines.join('\n')).not.toContain('database unavailable');
    } finally {
      await served.close();
    }
  });
});

describe('defect 6: CORS headers on refusals, and a preflight without Origin in the error shape', () => {
  const ORIGIN = 'https://app.example.com';
  let guarded: FastifyInstance;
  beforeAll(async () => {
    guarded = await buildTestApp(database, {
      env: { ...REQUIRED_AUTH_ENV, CORS_ORIGINS: ORIGIN, RATE_LIMIT_IP_MAX: '3' },
    });
  });
  afterAll(async () => {
    await guarded?.close();
  });

  function expectReadable(response: { headers: Record<string, unknown> }, header: string): void {
    expect(response.headers['access-control-allow-origin']).toBe(ORIGIN);
    const exposed = String(response.headers['access-control-expose-headers']).toLowerCase();
    expect(exposed.split(/,\s*/)).toContain(header);
  }

  it('lets the allowed origin read a 401, a 403 and a 429 with Retry-After', async () => {
    const keyless = await guarded.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/bob',
      headers: { origin: ORIGIN },
    });
    expect(keyless.statusCode).toBe(401);
    expectReadable(keyless, 'www-authenticate');

    const { key } = await createKey(database, ['analytics:read']);
    const unscoped = await guarded.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/bob',
      headers: { origin: ORIGIN, ...bearer(key) },
    });
    expect(unscoped.statusCode).toBe(403);
    expectReadable(unscoped, 'www-authenticate');

    let limited: Awaited<ReturnType<typeof guarded.inject>> | undefined;
    for (let i = 0; i < 10 && limited?.statusCode !== 429; i += 1) {
      limited = await guarded.inject({
        method: 'GET',
        url: '/api/v1/transaction/history/bob',
        headers: { origin: ORIGIN, ...bearer('not-a-valid-credential') },
      });
    }
    if (!limited) throw new Error('no request was sent');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toMatch(/^\d+$/);
    expectReadable(limited, 'retry-after');
  });

  it('answers a preflight without Origin 400 in the JSON error shape', async () => {
    const response = await guarded.inject({
      method: 'OPTIONS',
      url: '/api/v1/transaction/',
      headers: { 'access-control-request-method': 'POST' },
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toMatchObject({ name: 'FidoTransactionsAPI', code: 'BAD_REQUEST' });
  });

  it('still answers a real preflight from the allowed origin', async () => {
    const response = await guarded.inject({
      method: 'OPTIONS',
      url: '/api/v1/transaction/',
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
    });
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe(ORIGIN);
  });
});

describe('defect 5: webhooks may not be registered for loopback or internal host names', () => {
  let production: FastifyInstance;
  let admin: Record<string, string>;
  beforeAll(async () => {
    // What production does by default: only public targets, and credentials required.
    production = await buildTestApp(database, {
      env: { ...REQUIRED_AUTH_ENV, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false' },
    });
    admin = bearer((await createKey(database, ['webhooks:manage'])).key);
  });
  afterAll(async () => {
    await production?.close();
  });

  function register(url: string) {
    return production.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      headers: admin,
      payload: { url },
    });
  }

  it.each([
    'http://localhost./x',
    'http://foo.localhost/x',
    'https://FOO.LOCALHOST./x',
    'http://metadata.google.internal/computeMetadata/v1/',
    'http://anything.internal/x',
    'http://printer.local/x',
    'http://router.home.arpa/x',
  ])('refuses the special-use name in %s outright', async (url) => {
    const response = await register(url);
    expect(response.statusCode).toBe(422);
    expect(response.json<{ detail: { loc: unknown[]; msg: string }[] }>().detail[0]).toMatchObject({
      loc: ['body', 'url'],
      msg: 'URL must point at a public address',
    });
  });

  it('refuses a name that resolves (here through /etc/hosts) to a non-public address', async () => {
    const name = os.hostname();
    // The precondition that makes this test mean something: the machine's own name is local.
    const addresses = await dns.lookup(name, { all: true });
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every((entry) => !isPublicAddress(entry.address))).toBe(true);
    expect(isSpecialUseName(name)).toBe(false);

    const response = await register(`https://${name}/hook`);
    expect(response.statusCode).toBe(422);
    const patched = await production.inject({
      method: 'PATCH',
      url: `/api/v1/webhooks/${(await register('https://93.184.216.34/hook')).json<{ data: { id: string } }>().data.id}`,
      headers: admin,
      payload: { url: `https://${name}:8443/hook` },
    });
    expect(patched.statusCode).toBe(422);
  });

  it('resolves with the real resolver: localhost answers a loopback address', async () => {
    const check = await checkResolvedHost('localhost');
    expect(check).toMatchObject({ ok: false, reason: 'not-public' });
  });

  it('still registers a public address', async () => {
    const response = await register('https://93.184.216.34/hook');
    expect(response.statusCode, response.body).toBe(201);
  });
});
