import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/app.js';
import { finished, spawnEntry, type Finished } from '../helpers/entry.js';
import { fernetFixtures, makeLegacyExport } from '../helpers/legacy-export.js';

/*
 * `npm run cli -- import-legacy` as an operator runs it: exit 0 when every document was
 * imported, 1 when some were rejected, 2 on a fatal error (a bad key, an unreadable file, the
 * database down), on this test's engine (a PGlite data directory, or PostgreSQL in CI).
 */

let dir: string;
let postgres: TestDatabase | undefined;
let env: Record<string, string>;
const clean = makeLegacyExport({ users: 5, good: 60, userPrefix: 'cli-user', seed: 3 });
const mixed = makeLegacyExport({
  users: 5,
  good: 40,
  brokenEach: 1,
  userPrefix: 'cli-mixed',
  seed: 4,
  firstSerial: 5_000,
});

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fido-legacy-cli-'));
  if (process.env.TEST_DATABASE_URL) postgres = await createTestDatabase();
  env = {
    NODE_ENV: 'production',
    SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
    LEGACY_SECRET_KEY: fernetFixtures.key,
    DATA_DIR: path.join(dir, 'data'),
    LOG_LEVEL: 'warn',
    ...(postgres?.url ? { DATABASE_URL: postgres.url } : {}),
  };
  await writeFile(path.join(dir, 'clean.json'), clean.jsonLines());
  await writeFile(path.join(dir, 'mixed.json'), mixed.jsonArray());
});

afterAll(async () => {
  await postgres?.drop();
  await rm(dir, { recursive: true, force: true });
});

/** `import-legacy …` as an operator runs it, with everything it printed (read to the end). */
function cli(args: string[], overrides: Record<string, string> = {}): Promise<Finished> {
  return finished(
    spawnEntry(
      'cli',
      { ...env, ...overrides },
      { cwd: dir, args, stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
}

it('exits 0 when every document is imported, and again when a re-run finds them all', async () => {
  const first = await cli(['import-legacy', '--file', 'clean.json']);
  expect(first.code, first.stderr).toBe(0);
  expect(first.stdout).toMatch(/imported: +60\n/);
  const again = await cli(['import-legacy', '--file', 'clean.json']);
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout).toMatch(/imported: +0\n +already present: +60\n/);
}, 120_000);

it('exits 1 when some documents are rejected, listing them', async () => {
  const result = await cli(['import-legacy', '--file', 'mixed.json', '--report', 'report.json']);
  expect(result.code, result.stderr).toBe(1);
  expect(result.stdout).toMatch(
    new RegExp(`rejected: +${mixed.broken.length} \\(every one in report.json\\)`),
  );
}, 120_000);

it('exits 2 on a key that is not a Fernet key, never echoing it', async () => {
  const bad = 'not-a-fernet-key-at-all';
  const result = await cli(['import-legacy', '--file', 'clean.json'], { LEGACY_SECRET_KEY: bad });
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/LEGACY_SECRET_KEY/);
  expect(result.stderr).not.toContain(bad);
}, 120_000);

it('exits 2 on a file it cannot read', async () => {
  const result = await cli(['import-legacy', '--file', 'no-such-file.json']);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/Cannot read no-such-file.json/);
}, 120_000);

it('exits 2 when the database is down', async () => {
  // Port 1 refuses connections at once.
  const result = await cli(['import-legacy', '--file', 'clean.json'], {
    DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres',
  });
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/Import stopped/);
}, 120_000);
