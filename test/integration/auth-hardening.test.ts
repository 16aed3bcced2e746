import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../helpers/app.js';

/*
 * Abuse limits and browser-facing hardening: security headers everywhere (and a policy that
 * still lets Swagger UI run on /docs), CORS only for configured origins, request heads bounded
 * by Node before any of our code runs, connections bounded, page sizes bounded.
 */

let database: TestDatabase;
let plain: FastifyInstance;
let tuned: FastifyInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  plain = await buildTestApp(database);
  tuned = await buildTestApp(database, {
    env: {
      CORS_ORIGINS: 'https://app.example.com,http://localhost:3000',
      MAX_HEADER_BYTES: '2048',
      MAX_CONNECTIONS: '50',
      PAGE_SIZE_MAX: '50',
    },
  });
});

afterAll(async () => {
  await plain?.close();
  await tuned?.close();
  await database?.drop();
});

describe('security headers', () => {
  it('sends them on API answers, errors included', async () => {
    for (const url of ['/', '/api/v1/transaction/history/nobody', '/no/such/route']) {
      const response = await plain.inject({ method: 'GET', url });
      expect(response.headers).toMatchObject({
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'SAMEORIGIN',
        'strict-transport-security': expect.stringContaining('max-age='),
        'content-security-policy': expect.stringContaining("default-src 'none'"),
      });
    }
  });

  it("lets Swagger UI load its own scripts and styles on /docs, and nothing else's", async () => {
    const docs = await plain.inject({ method: 'GET', url: '/docs' });
    expect(docs.statusCode).toBe(200);
    const policy = String(docs.headers['content-security-policy']);
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("connect-src 'self'");
    expect(policy).not.toContain('unsafe-eval');
  });

  it('offers "Authorize" in /docs: the document declares the bearer scheme', async () => {
    const document = (await plain.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(document.components.securitySchemes.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
    const history = document.paths['/api/v1/transaction/history/{user_id}'].get;
    expect(history.security).toEqual([{ bearerAuth: ['transactions:read'] }]);
    expect(history['x-required-scope']).toBe('transactions:read');
  });
});

describe('CORS', () => {
  const preflight = (app: FastifyInstance, origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/api/v1/transaction/',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });

  it('is off unless configured', async () => {
    const response = await plain.inject({
      method: 'GET',
      url: '/',
      headers: { origin: 'https://app.example.com' },
    });
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    expect((await preflight(plain, 'https://app.example.com')).headers).not.toHaveProperty(
      'access-control-allow-origin',
    );
  });

  it('answers only the allow-listed origins', async () => {
    const allowed = await preflight(tuned, 'https://app.example.com');
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(allowed.headers['access-control-allow-headers'])).toContain('authorization');
    const other = await preflight(tuned, 'https://evil.example.com');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('limits', () => {
  it('refuses a request head over MAX_HEADER_BYTES (431, in the error shape)', async () => {
    await tuned.listen({ port: 0, host: '127.0.0.1' });
    const { port } = tuned.server.address() as net.AddressInfo;
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`);
      });
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString()));
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 431/);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as unknown;
    expect(body).toMatchObject({ name: 'FidoTransactionsAPI', code: 'REQUEST_HEADER_TOO_LARGE' });
    expect(tuned.server.maxConnections).toBe(50);
  });

  it('bounds the history page by PAGE_SIZE_MAX', async () => {
    const over = await tuned.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/u?limit=51',
    });
    expect(over.statusCode).toBe(422);
    expect(over.json().detail[0]).toMatchObject({ loc: ['query', 'limit'] });
  });
});
