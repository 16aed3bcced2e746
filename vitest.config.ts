import { defineConfig } from 'vitest/config';

// Tests under test/integration/postgres need what only a real server has (a connection that can
// be cut, true concurrency). CI runs the suite twice, once with TEST_DATABASE_URL set.
const withPostgres = Boolean(process.env.TEST_DATABASE_URL);
// Tests under test/integration/redis start and stop Redis servers of their own.
const withRedis = Boolean(process.env.TEST_REDIS_URL);

const exclude = [
  'node_modules/**',
  ...(withPostgres ? [] : ['test/integration/postgres/**']),
  ...(withRedis ? [] : ['test/integration/redis/**']),
];

// Tests that start processes of their own (the server, the worker, the CLI): the slowest files,
// in a project of their own. `npm test` runs both projects; `npx vitest run --project in-process`
// runs the rest alone, for a quicker loop while working.
const PROCESS_TESTS = [
  'test/integration/auth-cli.test.ts',
  'test/integration/docs-examples.test.ts',
  'test/integration/first-run.test.ts',
  'test/integration/legacy-cli.test.ts',
  'test/integration/postgres/jetstream-processes.test.ts',
  'test/integration/postgres/legacy-kill.test.ts',
  'test/integration/postgres/worker.test.ts',
  'test/integration/process.test.ts',
  'test/integration/redis/cluster.test.ts',
  'test/integration/startup.test.ts',
  'test/unit/heap.test.ts',
];

export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'in-process',
          include: ['test/**/*.test.ts'],
          exclude: [...exclude, ...PROCESS_TESTS],
        },
      },
      { extends: true, test: { name: 'processes', include: PROCESS_TESTS, exclude } },
    ],
    // One migrated database per run, copied by each file (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Each integration file builds its own database (a PGlite instance or a fresh PostgreSQL
    // database); two workers match the two cores CI has.
    maxWorkers: 2,
    // Hang detectors, not speed checks (speed is `npm run bench`'s): sized for a fresh clone on
    // a loaded 2-core machine, where a file's set-up and its heaviest tests ran 3–5x slower than
    // on an idle one (auth-matrix's route × caller sweep failed at the former 30 s).
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
