import { randomBytes } from 'node:crypto';
import pg from 'pg';

/*
 * Administration of the test PostgreSQL server (create and drop databases), free of vitest's
 * runtime so that test/global-setup.ts, which runs outside the test workers, can use it too.
 */

/** `url` pointing at another database of the same server. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Runs one statement on the server at `serverUrl` (create or drop a database); its rows. */
export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  serverUrl: string | undefined = process.env.TEST_DATABASE_URL || undefined,
): Promise<T[]> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A name for a database of a test run (`kind`: test or template): the creating process, the time
 * it was made (epoch seconds: dropLeftoverDatabases reads it) and 8 random hex digits.
 */
export function testDatabaseName(kind: 'test' | 'template', now = Date.now()): string {
  return `fido_${kind}_${process.pid}_${Math.floor(now / 1000)}_${randomBytes(4).toString('hex')}`;
}

/** Older than this, a test run's database is a leftover: no run lasts as long (CI stops at 90 min). */
export const LEFTOVER_AGE_MS = 3 * 60 * 60 * 1000;

/**
 * Drops the databases that test runs killed before their clean-up left behind: named by
 * testDatabaseName, made more than LEFTOVER_AGE_MS ago, and with no session connected. The age,
 * not the creating process, decides, so a run on another machine (or in another process namespace)
 * sharing the server is never taken for a dead one. A database that is in use after all is left
 * alone (no FORCE).
 */
export async function dropLeftoverDatabases(
  serverUrl: string,
  now = Date.now(),
): Promise<string[]> {
  const rows = await adminQuery<{ datname: string }>(
    `select datname from pg_database d
      where datname ~ '^fido_(test|template)_[0-9]+_[0-9]+_[0-9a-f]{8}$'
        and not exists (select 1 from pg_stat_activity a where a.datname = d.datname)`,
    serverUrl,
  );
  const dropped: string[] = [];
  for (const { datname } of rows) {
    const madeMs = Number(datname.split('_')[3]) * 1000;
    if (now - madeMs <= LEFTOVER_AGE_MS) continue;
    try {
      await adminQuery(`drop database if exists ${datname}`, serverUrl);
      dropped.push(datname);
    } catch {
      // Connected to since the listing: in use after all.
    }
  }
  return dropped;
}
