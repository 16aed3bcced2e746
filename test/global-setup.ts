import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../src/db/client.js';
import { createLogger } from '../src/platform/logging.js';
import {
  adminQuery,
  dropLeftoverDatabases,
  testDatabaseName,
  withDatabase,
} from './helpers/postgres-admin.js';

/*
 * Once per `npm test`: one migrated database that every test file starts from, instead of each
 * file creating and migrating its own. A fresh PGlite spends seconds in initdb (far more than the
 * migrations); loading a dump of a migrated one skips both. On PostgreSQL, files create their
 * database from a migrated template. Either way each file still gets a database of its own.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    /** A migrated PGlite data directory dump (PGlite runs), as a file path. */
    pgliteDumpPath: string | undefined;
    /** A migrated database to create each file's database from (PostgreSQL runs). */
    postgresTemplate: string | undefined;
  }
}

const logger = createLogger('silent');
const common = { poolSize: 2, statementTimeoutMs: 60_000, connectTimeoutMs: 10_000, logger };

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const serverUrl = process.env.TEST_DATABASE_URL || undefined;
  if (!serverUrl) {
    const directory = await mkdtemp(path.join(os.tmpdir(), 'fido-test-template-'));
    const handle = await openDatabase({ ...common, dataDir: 'memory://' });
    try {
      await handle.migrate();
      const dump = await handle.dumpDataDir!();
      const file = path.join(directory, 'pgdata.tar');
      await writeFile(file, Buffer.from(await dump.arrayBuffer()));
      project.provide('pgliteDumpPath', file);
      project.provide('postgresTemplate', undefined);
    } finally {
      await handle.close();
    }
    return () => rm(directory, { recursive: true, force: true });
  }

  await dropLeftoverDatabases(serverUrl);
  const name = testDatabaseName('template');
  await adminQuery(`create database ${name}`, serverUrl);
  const databaseUrl = withDatabase(serverUrl, name);
  const handle = await openDatabase({ ...common, dataDir: 'unused', databaseUrl });
  try {
    await handle.migrate();
  } finally {
    await handle.close();
  }
  project.provide('pgliteDumpPath', undefined);
  project.provide('postgresTemplate', name);
  return async () => {
    await adminQuery(`drop database if exists ${name} with (force)`, serverUrl);
  };
}
