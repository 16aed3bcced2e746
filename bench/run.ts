/**
 * npm run bench [-- --scenario NAME[,NAME…]] [-- --list] [-- --help]
 *
 * Without --scenario: the API suite (bench/suite.ts), every scenario. A suite scenario by name
 * runs it alone with the hello-world ceiling; a `-2-processes` one (PostgreSQL and Redis only)
 * brings its 1-process counterpart along, for the `× 1 process` ratio. `scaling` (seeds
 * 10^6 rows), `cache` and `import` (import-legacy throughput) are separate, in-process benchmarks
 * that run only when named, as are `scale-out` (a private primary with a streaming replica, Redis,
 * and the API on 1 and 2 processes) and `jetstream` (the relay to NATS JetStream: a backlog's
 * events/s, the lag under create load).
 */
import { parseArgs } from 'node:util';
import { scaling } from './scaling.js';
import { cacheScenario } from './cache.js';
import { importScenario } from './import.js';
import { jetStreamScenario } from './jetstream.js';
import { scaleOut } from './scale-out.js';
import { runSuite, SCENARIO_NAMES, SCENARIOS } from './suite.js';

const STANDALONE: Record<string, () => Promise<void>> = {
  scaling,
  cache: cacheScenario,
  import: importScenario,
  'scale-out': scaleOut,
  jetstream: jetStreamScenario,
};

const USAGE = `Usage: npm run bench [-- --scenario NAME[,NAME…]] [-- --list] [-- --help]

  (no option)          the API suite, every scenario, on embedded PGlite, or on PostgreSQL and
                       Redis with BENCH_DATABASE_URL and BENCH_REDIS_URL
  --scenario NAME      only these scenarios (repeatable, or comma-separated); scaling and cache
                       run only when named
  --list               the scenario names
  --help, -h           this text

Knobs (environment): BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_CONNECTIONS, BENCH_DEEP_PAGES,
BENCH_POOL_USERS, BENCH_POOL_ROWS, BENCH_WEBHOOK_DELIVERIES, BENCH_WEBHOOK_WARMUP,
BENCH_NODE_OPTIONS, BENCH_CPU_PROF=1, BENCH_KEEP=1.
See docs/performance.md.
`;

function parseOptions() {
  try {
    return parseArgs({
      options: {
        scenario: { type: 'string', multiple: true },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    // An unknown option or a missing value: say which, and how to call it.
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

const values = parseOptions();

if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

if (values.list) {
  const listed = SCENARIOS.map((s) =>
    s.oneProcess
      ? `${s.name}  (PostgreSQL + Redis only; runs ${s.oneProcess} too, for × 1 process)`
      : s.name,
  );
  console.log(`suite (npm run bench):\n  ${listed.join('\n  ')}`);
  console.log(`standalone (by name only):\n  ${Object.keys(STANDALONE).join('\n  ')}`);
  process.exit(0);
}

const names = values.scenario?.flatMap((s) => s.split(',')).map((s) => s.trim()) ?? [];
const unknown = names.filter((n) => !SCENARIO_NAMES.includes(n) && !(n in STANDALONE));
if (unknown.length > 0) {
  console.error(
    `Unknown scenario ${unknown.join(', ')}; known: ${[...SCENARIO_NAMES, ...Object.keys(STANDALONE)].join(', ')}`,
  );
  process.exit(2);
}

const suiteNames = names.filter((n) => SCENARIO_NAMES.includes(n));
if (names.length === 0 || suiteNames.length > 0) {
  await runSuite(names.length === 0 ? undefined : suiteNames);
}
for (const name of names.filter((n) => n in STANDALONE)) {
  console.log(`\n== ${name}`);
  await STANDALONE[name]!();
}
