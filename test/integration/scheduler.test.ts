import { afterAll, beforeAll, expect, it } from 'vitest';
import { startScheduler } from '../../src/jobs/scheduler.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { createLogger } from '../../src/platform/logging.js';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../helpers/app.js';
import { eventually } from '../helpers/webhook-receiver.js';

let database: TestDatabase;
/** A second connection pool to the same database: another instance, as far as locks go. */
let second: DatabaseHandle;

beforeAll(async () => {
  database = await createTestDatabase();
  second = database.url
    ? await openDatabase({
        databaseUrl: database.url,
        dataDir: 'unused',
        poolSize: 2,
        statementTimeoutMs: 5_000,
        connectTimeoutMs: 2_000,
        logger: createLogger('silent'),
      })
    : database.handle;
});

afterAll(async () => {
  if (second !== database.handle) await second.close();
  await database.drop();
});

it('two scheduler instances on one database run the job once per tick', async () => {
  const runs: { instance: string; at: number }[] = [];
  const logger = createLogger('silent');
  const job = (instance: string) => ({
    name: 'count-ticks',
    pattern: '* * * * * *',
    async run() {
      runs.push({ instance, at: Math.floor(Date.now() / 1000) });
      // Long enough that both instances are inside the same tick at once.
      await new Promise((resolve) => setTimeout(resolve, 150));
    },
  });
  const a = startScheduler(database.handle.db, [job('a')], logger);
  const b = startScheduler(second.db, [job('b')], logger);
  try {
    // Three ticks run, however slowly this machine reaches them.
    await eventually(() => (runs.length >= 3 ? true : undefined), {
      what: 'three ticks of the job',
      timeoutMs: 60_000,
    });
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }

  expect(runs.length).toBeGreaterThanOrEqual(3);
  const seconds = runs.map((r) => r.at);
  expect(new Set(seconds).size).toBe(seconds.length);
});

it('the app schedules the reconciliation when SCHEDULER=on, and reports it in /metrics', async () => {
  const app = await buildTestApp(database, {
    env: { SCHEDULER: 'on', RECONCILE_SCHEDULE: '* * * * * *' },
  });
  try {
    const exposition = await eventually(
      async () => {
        const body = (await app.inject({ method: 'GET', url: '/metrics' })).body;
        return /fido_reconciliation_runs_total [1-9]/.test(body) ? body : undefined;
      },
      { what: 'a reconciliation run in /metrics', timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(exposition).toMatch(/fido_reconciliation_runs_total [1-9]/);
    expect(exposition).toMatch(/fido_reconciliation_last_run_drift_rows 0\b/);
  } finally {
    await app.close();
  }
});
