import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { reconcileUser } from '../../../src/modules/analytics/reconciliation.js';
import { queryRows, type Db } from '../../../src/db/client.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { fernetFixtures, makeLegacyExport } from '../../helpers/legacy-export.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * A real crash: `import-legacy` killed with SIGKILL in the middle of a PostgreSQL import leaves
 * whole batches only (each batch and its rollups one transaction), and the same command run again
 * finishes the job exactly.
 */

const CLI_ENTRY = fileURLToPath(new URL('../../../src/cli.ts', import.meta.url));
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const USERS = 20;
const GOOD = 30_000;
const legacy = makeLegacyExport({ users: USERS, good: GOOD, userPrefix: 'killed', seed: 9 });

let dir: string;
let database: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fido-legacy-kill-'));
  database = await createTestDatabase();
  await writeFile(path.join(dir, 'transactions.json'), legacy.jsonLines());
  env = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    SECRET_KEY: Buffer.alloc(32, 9).toString('base64'),
    LEGACY_SECRET_KEY: fernetFixtures.key,
    DATABASE_URL: database.url!,
    LOG_LEVEL: 'warn',
  };
});

afterAll(async () => {
  await database?.drop();
  await rm(dir, { recursive: true, force: true });
});

function start(args: string[]) {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, ...args], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return { child, exited, output: () => stdout };
}

async function count(db: Db = database.handle.db): Promise<number> {
  const [row] = await queryRows<{ n: string }>(
    db,
    sql`select count(*)::text as n from transactions`,
  );
  return Number(row!.n);
}

async function expectNoDrift(): Promise<void> {
  for (let i = 0; i < USERS; i += 1) {
    const drift = await reconcileUser(database.handle.db, `killed-${i}`, 'UTC');
    expect(drift.rows, `killed-${i}`).toBe(0);
  }
}

it('a killed import leaves whole batches, and running it again finishes exactly', async () => {
  const batch = 200;
  const first = start([
    'import-legacy',
    '--file',
    'transactions.json',
    '--batch-size',
    String(batch),
  ]);
  await eventually(async () => ((await count()) >= 5 * batch ? true : undefined), {
    timeoutMs: 120_000,
    what: 'the import to store a few batches',
  });
  first.child.kill('SIGKILL');
  expect(await first.exited).toBeNull(); // killed, not finished
  // The killed connection's open transaction ends (rolled back, or committed if its COMMIT had
  // left) before a SHARE lock is granted: the count is then final.
  const stored = await database.handle.db.transaction(async (dbTx) => {
    await dbTx.execute(sql`lock table transactions in share mode`);
    return count(dbTx);
  });
  expect(stored).toBeLessThan(GOOD);
  expect(stored % batch).toBe(0);
  await expectNoDrift();

  const second = start(['import-legacy', '--file', 'transactions.json']);
  expect(await second.exited, second.output()).toBe(0);
  expect(second.output()).toMatch(
    new RegExp(`imported: +${GOOD - stored}\\n +already present: +${stored}\\n`),
  );
  expect(await count()).toBe(GOOD);
  await expectNoDrift();
}, 300_000);
