import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../helpers/app.js';
import { bearer, TEST_JWT_SECRET, userToken } from '../helpers/auth.js';
import { uniqueUserId } from '../helpers/factories.js';

/*
 * End-user tokens: RS256 and ES256 verified against a JWKS (served here from 127.0.0.1, or given
 * inline), HS256 against the shared secret; issuer, audience, expiry and the algorithm family
 * enforced; a JWKS that cannot be fetched answers 503, never lets anyone in.
 */

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'fido-api';
let database: TestDatabase;
let jwksServer: Server;
let jwksUrl: string;
const apps: FastifyInstance[] = [];
const keys = {} as Record<'rs' | 'es' | 'stranger', { privateKey: CryptoKey; jwk: JWK }>;

async function keyPair(alg: 'RS256' | 'ES256', kid: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

beforeAll(async () => {
  database = await createTestDatabase();
  keys.rs = await keyPair('RS256', 'rs-1');
  keys.es = await keyPair('ES256', 'es-1');
  keys.stranger = await keyPair('RS256', 'rs-1');
  jwksServer = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ keys: [keys.rs.jwk, keys.es.jwk] }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await new Promise((resolve) => jwksServer?.close(resolve));
  await database?.drop();
});

async function build(env: Record<string, string>): Promise<FastifyInstance> {
  const app = await buildTestApp(database, { env: { AUTH_MODE: 'required', ...env } });
  apps.push(app);
  return app;
}

function sign(
  key: { privateKey: CryptoKey; jwk: JWK },
  claims: { sub?: string; iss?: string; aud?: string; exp?: number | string } = {},
) {
  let jwt = new SignJWT({})
    .setProtectedHeader({ alg: key.jwk.alg!, kid: key.jwk.kid! })
    .setIssuedAt()
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? AUDIENCE);
  if (claims.sub !== undefined) jwt = jwt.setSubject(claims.sub);
  if (claims.exp !== 0) jwt = jwt.setExpirationTime(claims.exp ?? '10m');
  return jwt.sign(key.privateKey);
}

/** The status of the user's own history (404: authenticated, no transactions yet). */
async function statusWith(app: FastifyInstance, userId: string, token: string): Promise<number> {
  const response = await app.inject({
    method: 'GET',
    url: `/api/v1/transaction/history/${encodeURIComponent(userId)}`,
    headers: bearer(token),
  });
  return response.statusCode;
}

describe('JWKS from a URL (RS256, ES256)', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await build({ JWT_JWKS_URL: jwksUrl, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
  });

  it('accepts RS256 and ES256 tokens signed by a key in the set', async () => {
    const userId = uniqueUserId();
    expect(await statusWith(app, userId, await sign(keys.rs, { sub: userId }))).toBe(404);
    expect(await statusWith(app, userId, await sign(keys.es, { sub: userId }))).toBe(404);
  });

  it('refuses wrong issuer, wrong audience, expiry, no expiry, no subject, a foreign key', async () => {
    const userId = uniqueUserId();
    const refused = [
      await sign(keys.rs, { sub: userId, iss: 'https://evil.test' }),
      await sign(keys.rs, { sub: userId, aud: 'another-api' }),
      await sign(keys.rs, { sub: userId, exp: Math.floor(Date.now() / 1000) - 3600 }),
      await sign(keys.rs, { sub: userId, exp: 0 }),
      await sign(keys.rs, {}),
      await sign(keys.stranger, { sub: userId }),
      // An HS256 token when no secret is configured: the JWKS is never used as an HMAC key.
      await userToken(userId, { secret: TEST_JWT_SECRET }),
      // alg "none".
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(
        JSON.stringify({ sub: userId, iss: ISSUER, aud: AUDIENCE, exp: 9_999_999_999 }),
      ).toString('base64url')}.`,
      'not-a-jwt',
    ];
    for (const token of refused) {
      const response = await app.inject({
        method: 'GET',
        url: `/api/v1/transaction/history/${userId}`,
        headers: bearer(token),
      });
      expect(response.statusCode, token).toBe(401);
      expect(response.headers['www-authenticate']).toContain('invalid_token');
    }
  });
});

it('an inline JWKS (JWT_JWKS) verifies the same way', async () => {
  const app = await build({ JWT_JWKS: JSON.stringify({ keys: [keys.es.jwk] }) });
  const userId = uniqueUserId();
  expect(await statusWith(app, userId, await sign(keys.es, { sub: userId }))).toBe(404);
  expect(await statusWith(app, userId, await sign(keys.rs, { sub: userId }))).toBe(401);
});

it('HS256 with JWT_SECRET: a token under another secret, or tampered with, is refused', async () => {
  const app = await build({ JWT_SECRET: TEST_JWT_SECRET });
  const userId = uniqueUserId();
  const token = await userToken(userId);
  expect(await statusWith(app, userId, token)).toBe(404);
  expect(await statusWith(app, userId, await userToken(userId, { secret: 'x'.repeat(40) }))).toBe(
    401,
  );
  const [header, , signature] = token.split('.');
  const claims = Buffer.from(JSON.stringify({ sub: 'someone-else', exp: 9_999_999_999 })).toString(
    'base64url',
  );
  expect(await statusWith(app, 'someone-else', `${header}.${claims}.${signature}`)).toBe(401);
});

it('a JWKS that cannot be fetched answers 503, not 401 and never 200', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const app = await build({ JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` });
  const userId = uniqueUserId();
  const response = await app.inject({
    method: 'GET',
    url: `/api/v1/transaction/history/${userId}`,
    headers: bearer(await sign(keys.rs, { sub: userId })),
  });
  expect(response.statusCode).toBe(503);
  expect(response.json().code).toBe('SERVICE_UNAVAILABLE');
});
