import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { adminQuery, dropLeftoverDatabases } from '../../helpers/postgres-admin.js';
import { TEST_DATABASE_URL } from '../../helpers/app.js';

/*
 * A test run killed before its clean-up leaves its databases on the server; the next run's
 * global set-up drops them. Only those whose process is gone and that nobody is connected to.
 */
const serverUrl = TEST_DATABASE_URL!;
const hex = () => randomBytes(4).toString('hex');
/** The id of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid;
const created: string[] = [];

async function createDatabase(name: string): Promise<void> {
  await adminQuery(`create database ${name}`, serverUrl);
  created.push(name);
}

const exists = async (name: string) =>
  (await adminQuery(`select 1 from pg_database where datname = '${name}'`, serverUrl)).length > 0;

afterAll(async () => {
  for (const name of created)
    await adminQuery(`drop database if exists ${name} with (force)`, serverUrl);
});

it("drops a killed run's test and template databases, and keeps a running one's", async () => {
  const gone = deadPid();
  const leftTest = `fido_test_${gone}_${hex()}`;
  const leftTemplate = `fido_template_${gone}_${hex()}`;
  const ours = `fido_test_${process.pid}_${hex()}`;
  for (const name of [leftTest, leftTemplate, ours]) await createDatabase(name);

  const dropped = await dropLeftoverDatabases(serverUrl);

  expect(dropped).toEqual(expect.arrayContaining([leftTest, leftTemplate]));
  expect(dropped).not.toContain(ours);
  expect(await exists(leftTest)).toBe(false);
  expect(await exists(leftTemplate)).toBe(false);
  expect(await exists(ours)).toBe(true);
});
