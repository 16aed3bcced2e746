import { defineConfig } from 'vitest/config';

// Tests under test/integration/postgres need what only a real server has (a connection that can
// be cut, true concurrency). CI runs the suite twice, once with TEST_DATABASE_URL set.
const withPostgres = Boolean(process.env.TEST_DATABASE_URL);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: withPostgres
      ? ['node_modules/**']
      : ['node_modules/**', 'test/integration/postgres/**'],
    pool: 'forks',
    // Each integration file builds its own database (a PGlite instance or a fresh PostgreSQL
    // database); two workers match the two cores CI has.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
