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

/** Runs one statement on the server at `serverUrl` (create or drop a database). */
export async function adminQuery(
  text: string,
  serverUrl: string | undefined = process.env.TEST_DATABASE_URL || undefined,
): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
