import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  type TestDatabase,
} from '../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

/*
 * No key material and no token ever reaches the logs: every kind of credential, good and bad,
 * is sent at the most verbose level, then every captured line is scanned for any of them.
 */

const { logger, lines: output } = captureLogs('trace');
let database: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildTestApp(database, {
    env: { ...REQUIRED_AUTH_ENV, RATE_LIMIT_IP_MAX: '2' },
    deps: { logger },
  });
});

afterAll(async () => {
  await app.close();
  await database.drop();
});

it('logs no API key, key secret or user token, whatever happens to the request', async () => {
  const secrets: string[] = [];
  const admin = await createKey(database, ['admin']);
  const revoked = await createKey(database, ['admin'], { revoked: true });
  const expired = await createKey(database, ['admin'], { expired: true });
  const userId = uniqueUserId();
  const token = await userToken(userId);
  const expiredToken = await userToken(userId, { expiresIn: Math.floor(Date.now() / 1000) - 600 });
  const forged = await userToken(userId, { secret: 'someone-elses-secret-0123456789abcdef' });
  secrets.push(admin.key, revoked.key, expired.key, token, expiredToken, forged);

  const send = (
    credential: string,
    url: string,
    method: 'GET' | 'POST' = 'GET',
    payload?: object,
  ) => app.inject({ method, url, headers: bearer(credential), ...(payload ? { payload } : {}) });

  await send(admin.key, '/api/v1/transaction/', 'POST', transactionBody({ user_id: userId }));
  await send(token, `/api/v1/transaction/history/${userId}`);
  await send(token, '/api/v1/api-keys');
  const created = await send(admin.key, '/api/v1/api-keys', 'POST', {
    name: 'logged?',
    scopes: ['transactions:read'],
  });
  expect(created.statusCode).toBe(201);
  secrets.push(created.json().data.key);
  for (const bad of [revoked.key, expired.key, expiredToken, forged, `${admin.key}x`]) {
    expect((await send(bad, `/api/v1/transaction/history/${userId}`)).statusCode).toBeGreaterThan(
      400,
    );
  }
  // A malformed header and a rate-limited one are logged like any other request.
  await app.inject({
    method: 'GET',
    url: '/api/v1/api-keys',
    headers: { authorization: `Basic ${admin.key}` },
  });

  const text = output.join('');
  expect(text).toContain('request completed');
  for (const secret of secrets) {
    expect(text).not.toContain(secret);
    // Nor the secret half of a key, nor a token's signature, on its own.
    const tail = secret.slice(-20);
    expect(text).not.toContain(tail);
  }
});
