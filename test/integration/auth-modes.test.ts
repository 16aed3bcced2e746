import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  type TestDatabase,
} from '../helpers/app.js';
import { bearer, createKey, TEST_JWT_SECRET, userToken } from '../helpers/auth.js';
import { AuthSetupError } from '../../src/app.js';

/*
 * Production is closed by default and refuses to start when nobody could authenticate;
 * development with no credentials configured runs open, says so, and closes for good as soon as
 * the first key exists. One database for the file (a fresh one costs seconds): the tests run in
 * order, those that need a database without usable keys first.
 */

const PRODUCTION = { NODE_ENV: 'production', SECRET_KEY: Buffer.alloc(32, 9).toString('base64') };
const HISTORY = '/api/v1/transaction/history/someone';

let database: TestDatabase;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});
afterAll(async () => {
  await database?.drop();
});

async function build(
  env: Record<string, string>,
  logger?: FastifyBaseLogger,
): Promise<FastifyInstance> {
  const app = await buildTestApp(database, { env, ...(logger ? { deps: { logger } } : {}) });
  apps.push(app);
  return app;
}

describe('without any usable key', () => {
  it('refuses to start without any way to authenticate, saying how to make the first key', async () => {
    const attempt = build(PRODUCTION);
    await expect(attempt).rejects.toThrow(AuthSetupError);
    await expect(attempt).rejects.toThrow(/keys create --scopes admin/);
  });

  it('AUTH_MODE=required outside production refuses the same way', async () => {
    await expect(build({ AUTH_MODE: 'required' })).rejects.toThrow(/AUTH_MODE=required/);
  });
  it('starts with only a JWT verifier configured', async () => {
    const app = await build({ ...PRODUCTION, JWT_SECRET: TEST_JWT_SECRET });
    expect((await app.inject({ method: 'GET', url: HISTORY })).statusCode).toBe(401);
    const token = await userToken('someone');
    expect(
      (await app.inject({ method: 'GET', url: HISTORY, headers: bearer(token) })).statusCode,
    ).toBe(404);
  });

  it('is closed from the start when a JWT verifier is configured', async () => {
    const app = await build({ NODE_ENV: 'development', JWT_SECRET: TEST_JWT_SECRET });
    expect((await app.inject({ method: 'GET', url: HISTORY })).statusCode).toBe(401);
  });

  it('still refuses bad credentials while open', async () => {
    const app = await build({ NODE_ENV: 'development' });
    const response = await app.inject({
      method: 'GET',
      url: HISTORY,
      headers: bearer('fido_aaaaaaaaaaaaaaaa_' + 'A'.repeat(43)),
    });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toContain('invalid_token');
  });
  it('does not start when the only keys are revoked or expired', async () => {
    await createKey(database, ['admin'], { revoked: true });
    await createKey(database, ['admin'], { expired: true });
    await expect(build(PRODUCTION)).rejects.toThrow(AuthSetupError);
  });
});

describe('development, open until the first key', () => {
  it('runs open without credentials, says so, and closes once the first key is created', async () => {
    const { logger, lines: logs } = captureLogs('info');
    const app = await build({ NODE_ENV: 'development' }, logger);
    expect(logs.join('')).toMatch(/AUTHENTICATION IS OFF/);

    expect((await app.inject({ method: 'GET', url: HISTORY })).statusCode).toBe(404);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.headers['fido-auth']).toBe('open');
    expect(ready.json()).toMatchObject({ status: 'ready', auth: 'open' });
    expect(ready.json().warning).toMatch(/Authentication is off/);

    // Open means open: the first key can be made through the API too.
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/api-keys',
      payload: { name: 'first', scopes: ['admin'] },
    });
    expect(created.statusCode).toBe(201);
    const { key } = created.json().data;

    expect((await app.inject({ method: 'GET', url: HISTORY })).statusCode).toBe(401);
    expect(
      (await app.inject({ method: 'GET', url: HISTORY, headers: bearer(key) })).statusCode,
    ).toBe(404);
    const after = await app.inject({ method: 'GET', url: '/readyz' });
    expect(after.headers['fido-auth']).toBe('required');
    expect(after.json()).toEqual({ status: 'ready', checks: expect.any(Object) });
    expect(logs.join('')).toMatch(/authentication is now required/);
  });
});

describe('with a key', () => {
  it('starts with an API key in the database, and requires credentials', async () => {
    const { key } = await createKey(database, ['transactions:read']);
    const app = await build(PRODUCTION);
    const anonymous = await app.inject({ method: 'GET', url: HISTORY });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer realm="fido"');
    expect(
      (await app.inject({ method: 'GET', url: HISTORY, headers: bearer(key) })).statusCode,
    ).toBe(404);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.headers['fido-auth']).toBe('required');
    expect(ready.json()).not.toHaveProperty('warning');
  });

  it('is closed from the start when a key already exists', async () => {
    await createKey(database, ['admin']);
    const app = await build({ NODE_ENV: 'development' });
    expect((await app.inject({ method: 'GET', url: HISTORY })).statusCode).toBe(401);
  });
});
