import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/client.js';
import { createLogger } from '../../src/platform/logging.js';
import { createTestDatabase, testKeyRing, type TestDatabase } from '../helpers/app.js';
import { bearer } from '../helpers/auth.js';

/*
 * The first key, as an operator makes it: `keys create` in the CLI prints the key (alone on
 * stdout), `keys list` shows it without its secret, a production app accepts it, and after
 * `keys revoke` it is refused.
 */

const CLI_ENTRY = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const SECRET_KEY = Buffer.alloc(32, 3).toString('base64');

let dataDir: string;
let postgres: TestDatabase | undefined;
let env: Record<string, string>;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'fido-cli-'));
  if (process.env.TEST_DATABASE_URL) postgres = await createTestDatabase();
  env = {
    PATH: process.env.PATH ?? '',
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

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, ...args], {
      cwd: dataDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A production app on the CLI's database, asked once with `key`; closed again after. */
async function statusWith(key: string): Promise<number> {
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
    const response = await app.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/nobody',
      headers: bearer(key),
    });
    return response.statusCode;
  } finally {
    await app.close();
    await database.close();
  }
}

it('creates, lists and revokes the first key', { timeout: 120_000 }, async () => {
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
