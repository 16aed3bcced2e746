import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { validateCreateApiKeyBody } from '../../src/modules/api-keys/index.js';
import { openDatabase } from '../../src/db/client.js';
import { createLogger } from '../../src/platform/logging.js';
import { createTestDatabase, testKeyRing, type TestDatabase } from '../helpers/app.js';
import { bearer } from '../helpers/auth.js';
import { finished, spawnEntry, type Finished } from '../helpers/entry.js';

/*
 * The first key, as an operator makes it: `keys create` in the CLI prints the key (alone on
 * stdout), `keys list` shows it without its secret, a production app accepts it, and after
 * `keys revoke` it is refused.
 */

const SECRET_KEY = Buffer.alloc(32, 3).toString('base64');

let dataDir: string;
let postgres: TestDatabase | undefined;
let env: Record<string, string>;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'fido-cli-'));
  if (process.env.TEST_DATABASE_URL) postgres = await createTestDatabase();
  env = {
    NODE_ENV: 'production',
    SECRET_KEY,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    ...(postgres?.url ? { DATABASE_URL: postgres.url } : {}),
  };
});

afterAll(async () => {
  await postgres?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

/** `keys …` as an operator runs it, with everything it printed (read to the end). */
function cli(...args: string[]): Promise<Finished> {
  return finished(
    spawnEntry('cli', env, { cwd: dataDir, args, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
}

/** A production app on the CLI's database, for `use`; closed again after. */
async function withApp<T>(use: (app: FastifyInstance) => Promise<T>): Promise<T> {
  const logger = createLogger('silent');
  const database = await openDatabase({
    databaseUrl: postgres?.url,
    dataDir,
    poolSize: 2,
    statementTimeoutMs: 5_000,
    connectTimeoutMs: 2_000,
    logger,
  });
  const app = await buildApp(
    loadConfig({ ...env, SCHEDULER: 'off', LOG_LEVEL: 'silent', RATE_LIMIT_IP_MAX: '0' }),
    { database, migrate: true, keyRing: testKeyRing(), logger },
  );
  try {
    return await use(app);
  } finally {
    await app.close();
    await database.close();
  }
}

/** The answer of a production app on the CLI's database to one request with `key`. */
function statusWith(key: string): Promise<number> {
  return withApp(async (app) => {
    const response = await app.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/nobody',
      headers: bearer(key),
    });
    return response.statusCode;
  });
}

/**
 * A hang bound for a test of several CLI runs, each a process of its own that took about 8 s on
 * a loaded 2-core machine and over 30 s on a busier one (four of them and two app builds ran past
 * the suite's 120 s).
 */
const CLI_TEST_TIMEOUT_MS = 240_000;

it('creates, lists and revokes the first key', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
  const created = await cli('keys', 'create', '--scopes', 'admin', '--name', 'ops');
  expect(created.code, created.stderr).toBe(0);
  const key = created.stdout.trim();
  expect(key).toMatch(/^fido_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
  expect(created.stderr).toContain('shown this once');
  const id = key.split('_')[1]!;

  const listed = await cli('keys', 'list');
  expect(listed.code, listed.stderr).toBe(0);
  expect(listed.stdout).toMatch(new RegExp(`${id}\\s+active`));
  expect(listed.stdout).not.toContain(key.slice(-43));

  expect(await statusWith(key)).toBe(404);

  // A second key first: production will not start once no usable key is left.
  expect((await cli('keys', 'create', '--scopes', 'transactions:read', '--name', 'ro')).code).toBe(
    0,
  );
  const revoked = await cli('keys', 'revoke', id);
  expect(revoked.code, revoked.stderr).toBe(0);
  expect(await statusWith(key)).toBe(401);
});

/*
 * `keys create` validates through the API's own schema: it refuses exactly what
 * `POST /api/v1/api-keys` refuses, and accepts what it accepts, as given (a CLI that trimmed
 * names, counted UTF-16 units and let a scope repeat disagreed with the API on each of these).
 */
it(
  'accepts and refuses in keys create what POST /api/v1/api-keys does',
  { timeout: CLI_TEST_TIMEOUT_MS },
  async () => {
    const admin = await cli('keys', 'create', '--scopes', 'admin', '--name', 'admin');
    expect(admin.code, admin.stderr).toBe(0);
    const adminKey = admin.stdout.trim();

    const cases: { name: string; scopes: string; api: number }[] = [
      // 100 characters, 200 UTF-16 units: the old CLI refused it.
      { name: '\u{1F511}'.repeat(100), scopes: 'admin', api: 201 },
      // Kept as given, spaces and all: the old CLI trimmed this to nothing and refused it.
      { name: '   ', scopes: 'admin', api: 201 },
      // The old CLI let the scope repeat (and dropped the copy).
      { name: 'twice', scopes: 'admin,admin', api: 422 },
      { name: 'tab\there', scopes: 'admin', api: 422 },
    ];
    const answered = await withApp(async (app) =>
      Promise.all(
        cases.map(async ({ name, scopes }) => {
          const response = await app.inject({
            method: 'POST',
            url: '/api/v1/api-keys',
            headers: bearer(adminKey),
            payload: { name, scopes: scopes.split(',') },
          });
          return response.statusCode;
        }),
      ),
    );
    expect(answered).toEqual(cases.map((c) => c.api));

    const made: { name: string; code: number | null }[] = [];
    for (const { name, scopes } of cases) {
      const { code, stderr } = await cli('keys', 'create', '--scopes', scopes, '--name', name);
      made.push({ name, code });
      // Stored as given: the name between the parentheses is the one sent, untrimmed.
      if (code === 0) expect(stderr).toContain(`(${name}; scopes admin;`);
    }
    expect(made).toEqual(cases.map(({ name, api }) => ({ name, code: api === 201 ? 0 : 2 })));

    // What argv cannot carry, the shared check still refuses as the API's schema does.
    expect(validateCreateApiKeyBody({ name: 'half \ud83d', scopes: ['admin'] }).ok).toBe(false);
    expect(validateCreateApiKeyBody({ name: '\u{1F511}', scopes: ['admin'] }).ok).toBe(true);
  },
);
