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

/** Whether a process of this machine is running (one of another user's counts). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops the databases earlier runs on this machine left behind when they were killed before
 * their clean-up: named `fido_test_<pid>_…` or `fido_template_<pid>_…` (see createTestDatabase
 * and test/global-setup.ts) by a process that is no longer running, with no session connected.
 * Only for a server on this machine: elsewhere the process ids are another machine's. A database
 * that is in use after all is left alone (no FORCE).
 */
export async function dropLeftoverDatabases(serverUrl: string): Promise<string[]> {
  const { hostname } = new URL(serverUrl);
  if (!['127.0.0.1', 'localhost', '[::1]', ''].includes(hostname)) return [];
  const rows = await adminQuery<{ datname: string }>(
    `select datname from pg_database d
      where datname ~ '^fido_(test|template)_[0-9]+_[0-9a-f]{8}$'
        and not exists (select 1 from pg_stat_activity a where a.datname = d.datname)`,
    serverUrl,
  );
  const dropped: string[] = [];
  for (const { datname } of rows) {
    if (running(Number(datname.split('_')[2]))) continue;
    try {
      await adminQuery(`drop database if exists ${datname}`, serverUrl);
      dropped.push(datname);
    } catch {
      // Connected to since the listing: another run's after all.
    }
  }
  return dropped;
}
