import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/client.js';
import { createLogger } from '../../src/platform/logging.js';
import { createTestDatabase, TEST_DATABASE_URL, testConfig } from '../helpers/app.js';
import { eventually } from '../helpers/webhook-receiver.js';

/*
 * Start-up fails after the database was opened and migrated (here: the development key file in
 * DATA_DIR is corrupt, so the key ring cannot load). The database is closed again before
 * buildApp rejects: the data directory's lock is released, or no session is left on PostgreSQL.
 * (test/integration/redis/startup-cleanup.test.ts shows the same for the Redis connections.)
 */

const dataDir = mkdtempSync(join(tmpdir(), 'fido-startup-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** Backend pids of the sessions on database `name`, other than the caller's (PostgreSQL only). */
async function sessionsOn(name: string): Promise<Set<number>> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    const result = await client.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [name],
    );
    return new Set(result.rows.map((row) => row.pid));
  } finally {
    await client.end();
  }
}

describe('a start-up that fails after opening the database', () => {
  it('closes it before it rejects', { timeout: 180_000 }, async () => {
    writeFileSync(join(dataDir, 'encryption.key'), 'not a key\n');
    const database = TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    try {
      const config = testConfig({
        DATA_DIR: dataDir,
        ...(database?.url ? { DATABASE_URL: database.url } : {}),
      });
      // The test's own handle on the database (it migrated it) may keep idle sessions open:
      // only sessions the app opened count.
      const name = database?.url ? new URL(database.url).pathname.slice(1) : undefined;
      const ours = name ? await sessionsOn(name) : new Set<number>();
      await expect(buildApp(config)).rejects.toThrow(/encryption\.key/);

      if (name) {
        await eventually(
          async () => {
            const left = [...(await sessionsOn(name))].filter((pid) => !ours.has(pid));
            return left.length === 0 ? true : undefined;
          },
          { timeoutMs: 60_000, what: "the app's database sessions to close" },
        );
      } else {
        // The embedded database holds DATA_DIR's lock while open: a second open succeeds only
        // once the first was closed.
        const reopened = await openDatabase({
          dataDir,
          poolSize: 1,
          statementTimeoutMs: 10_000,
          connectTimeoutMs: 2_000,
          logger: createLogger('silent'),
        });
        await reopened.close();
      }
    } finally {
      await database?.drop();
    }
  });
});
