import { afterAll, expect, it } from 'vitest';
import {
  adminQuery,
  dropLeftoverDatabases,
  LEFTOVER_AGE_MS,
  testDatabaseName,
} from '../../helpers/postgres-admin.js';
import { TEST_DATABASE_URL } from '../../helpers/app.js';

/*
 * A test run killed before its clean-up leaves its databases on the server; a later run's global
 * set-up drops them once they are older than any run lasts, if nobody is connected to them.
 */
const serverUrl = TEST_DATABASE_URL!;
const created: string[] = [];

async function createDatabase(name: string): Promise<void> {
  await adminQuery(`create database ${name}`, serverUrl);
  created.push(name);
}

const exists = async (name: string) =>
  (await adminQuery(`select 1 from pg_database where datname = '${name}'`, serverUrl)).length > 0;

afterAll(async () => {
  for (const name of created) {
    await adminQuery(`drop database if exists ${name} with (force)`, serverUrl);
  }
});

it("drops a killed run's test and template databases once they are old, and keeps a recent one", async () => {
  const longAgo = Date.now() - LEFTOVER_AGE_MS - 60_000;
  const leftTest = testDatabaseName('test', longAgo);
  const leftTemplate = testDatabaseName('template', longAgo);
  // Made just now, as a run still going would have (on this machine or another).
  const recent = testDatabaseName('template');
  for (const name of [leftTest, leftTemplate, recent]) await createDatabase(name);

  const dropped = await dropLeftoverDatabases(serverUrl);

  expect(dropped).toEqual(expect.arrayContaining([leftTest, leftTemplate]));
  expect(dropped).not.toContain(recent);
  expect(await exists(leftTest)).toBe(false);
  expect(await exists(leftTemplate)).toBe(false);
  expect(await exists(recent)).toBe(true);
});
