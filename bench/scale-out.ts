/**
 * Scale-out, for correctness and for the cost of each piece: a private PostgreSQL primary with a
 * streaming replica and a private Redis, all on this machine, and the built API (dist/) in the
 * configurations below (the last one: 2 API processes, the primary and its replica, a 3-master
 * Redis Cluster), one after the other in the same run, each under the same mixed
 * read/write load. A 2-core machine cannot show a speed-up; what it shows is the overhead of each
 * piece next to the single-node configuration, the cache hit ratio, the share of reads the
 * replica served, and that no read after a write was stale.
 *
 *   npm run bench -- --scenario scale-out
 *
 * The load: SCALE_OUT_CONCURRENCY (16) clients over SCALE_OUT_USERS (100) users, each request a
 * create (20 %), a history page (40 %), all-time analytics (25 %) or a read by id (15 %), for
 * BENCH_SECONDS (5) after a BENCH_WARMUP_SECONDS (1) warm-up. Every read is checked against the
 * writes acknowledged before it was sent: analytics counts at least those, history holds each of
 * them, a read by id of one of them finds it. With two HTTP processes, the connections (and so a
 * user's writes and reads) are dealt to both. Results: bench/results/scale-out/<date>.json.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiKeysService } from '../src/modules/api-keys/index.js';
import { openDatabase } from '../src/db/client.js';
import { createLogger } from '../src/platform/logging.js';
import { startStreamingPair, type StreamingPair } from '../test/helpers/postgres-replica.js';
import { RedisCluster } from '../test/helpers/redis-cluster.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import {
  envNumber,
  processTree,
  socketOwner,
  startServer,
  type ServerProcess,
} from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = path.join(ROOT, 'bench', 'results', 'scale-out');

const SETTINGS = {
  seconds: envNumber('BENCH_SECONDS', 5),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 1),
  concurrency: Math.max(1, envNumber('SCALE_OUT_CONCURRENCY', 16)),
  users: Math.max(1, envNumber('SCALE_OUT_USERS', 100)),
};

interface Configuration {
  name: string;
  description: string;
  processes: number;
  replica: boolean;
  /** Redis: one server (REDIS_URL) or the 3-master cluster (REDIS_CLUSTER_NODES). */
  redis: 'server' | 'cluster';
}

const CONFIGURATIONS: Configuration[] = [
  {
    name: 'single-node',
    description: '1 API process, the primary alone, one Redis server',
    processes: 1,
    replica: false,
    redis: 'server',
  },
  {
    name: '2-processes',
    description: 'WEB_CONCURRENCY=2 (one port), the primary alone, one Redis server',
    processes: 2,
    replica: false,
    redis: 'server',
  },
  {
    name: '2-processes+replica',
    description:
      'WEB_CONCURRENCY=2, the primary and READ_DATABASE_URL (its streaming replica), one Redis server',
    processes: 2,
    replica: true,
    redis: 'server',
  },
  {
    name: 'scale-out',
    description:
      'WEB_CONCURRENCY=2, the primary and its replica, a 3-master Redis Cluster (REDIS_CLUSTER_NODES)',
    processes: 2,
    replica: true,
    redis: 'cluster',
  },
];

interface Counters {
  cacheErrors: number;
  cacheHits: number;
  cacheMisses: number;
  replicaReads: number;
  primaryReads: number;
  fallbacks: number;
}

function parseCounters(text: string): Counters {
  const sum = (pattern: string) =>
    [...text.matchAll(new RegExp(`^${pattern} (\\S+)$`, 'gm'))].reduce(
      (total, match) => total + Number(match[1]),
      0,
    );
  return {
    cacheErrors: sum('fido_cache_errors_total\\{[^}]*\\}'),
    cacheHits: sum('fido_cache_hits_total'),
    cacheMisses: sum('fido_cache_misses_total'),
    replicaReads: sum('fido_db_reads_total\\{target="replica_\\d+"\\}'),
    primaryReads: sum('fido_db_reads_total\\{target="primary"\\}'),
    fallbacks: sum('fido_db_read_fallbacks_total\\{[^}]*\\}'),
  };
}

/**
 * /metrics of every HTTP process (each on a connection of its own), summed; or one answer when the
 * server already sums its processes in each.
 */
async function serverCounters(server: ServerProcess): Promise<Counters> {
  const pids =
    server.httpProcesses === 1
      ? [server.pid]
      : processTree(server.pid).filter((pid) => pid !== server.pid);
  const seen = new Map<number, Counters>();
  const port = Number(new URL(server.url).port);
  for (let attempt = 0; attempt < 16 * pids.length && seen.size < pids.length; attempt += 1) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const { pid, text } = await new Promise<{ pid: number | undefined; text: string }>(
        (resolve, reject) => {
          const request = http.get(
            `${server.url}/metrics`,
            { agent, headers: AUTH },
            (response) => {
              const clientPort = response.socket.localPort;
              let body = '';
              response.setEncoding('utf8');
              response.on('data', (chunk: string) => (body += chunk));
              response.on('end', () =>
                resolve({
                  pid:
                    server.httpProcesses === 1
                      ? server.pid
                      : clientPort === undefined
                        ? undefined
                        : socketOwner(port, clientPort, pids),
                  text: body,
                }),
              );
              response.on('error', reject);
            },
          );
          request.on('error', reject);
        },
      );
      if (pid !== undefined && !seen.has(pid)) seen.set(pid, parseCounters(text));
    } finally {
      agent.destroy();
    }
  }
  if (seen.size < pids.length) throw new Error(`${server.name}: not every process answered`);
  const all = [...seen.values()];
  // A server that sums its processes in every scrape answers the same from each of them (at rest,
  // between loads): then one answer is the whole server.
  const first = JSON.stringify(all[0]);
  if (all.length > 1 && all.every((c) => JSON.stringify(c) === first)) return all[0]!;
  const total = (key: keyof Counters) => all.reduce((sum, c) => sum + c[key], 0);
  return {
    cacheErrors: total('cacheErrors'),
    cacheHits: total('cacheHits'),
    cacheMisses: total('cacheMisses'),
    replicaReads: total('replicaReads'),
    primaryReads: total('primaryReads'),
    fallbacks: total('fallbacks'),
  };
}

const AUTH: Record<string, string> = {};

interface Answer {
  status: number;
  body: string;
}

function send(
  agent: http.Agent,
  base: string,
  method: 'GET' | 'POST',
  url: string,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${base}${url}`,
      {
        method,
        agent,
        headers: {
          ...AUTH,
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

interface LoadOutcome {
  requests: number;
  writes: number;
  reads: number;
  /** Reads checked against the writes acknowledged before they were sent. */
  checked: number;
  stale: number;
  staleExamples: string[];
  errors: number;
  statuses: Record<string, number>;
  latenciesMs: number[];
}

/** Mixed load from `concurrency` clients until `untilMs`; every read checked. */
async function mixedLoad(
  base: string,
  users: { id: string; acked: string[] }[],
  untilMs: number,
  outcome: LoadOutcome,
): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: SETTINGS.concurrency });
  const stale = (what: string) => {
    outcome.stale += 1;
    if (outcome.staleExamples.length < 5) outcome.staleExamples.push(what);
  };
  const count = (status: number) =>
    (outcome.statuses[String(status)] = (outcome.statuses[String(status)] ?? 0) + 1);
  async function client(): Promise<void> {
    while (Date.now() < untilMs) {
      const user = users[Math.floor(Math.random() * users.length)]!;
      const roll = Math.random();
      const known = user.acked.length;
      const started = performance.now();
      try {
        if (roll < 0.2 || known === 0) {
          const answer = await send(
            agent,
            base,
            'POST',
            '/api/v1/transaction/',
            JSON.stringify({
              user_id: user.id,
              full_name: 'Ama Owusu',
              transaction_amount: 100 + Math.floor(Math.random() * 900),
              transaction_type: Math.random() < 0.5 ? 'credit' : 'debit',
            }),
          );
          count(answer.status);
          outcome.writes += 1;
          if (answer.status === 201) {
            user.acked.push((JSON.parse(answer.body) as { data: { id: string } }).data.id);
          } else {
            outcome.errors += 1;
          }
        } else if (roll < 0.6) {
          const answer = await send(
            agent,
            base,
            'GET',
            `/api/v1/transaction/history/${user.id}?limit=100`,
          );
          count(answer.status);
          outcome.reads += 1;
          if (answer.status !== 200) {
            outcome.errors += 1;
          } else if (known <= 100) {
            outcome.checked += 1;
            const ids = new Set(
              (JSON.parse(answer.body) as { data: { id: string }[] }).data.map((t) => t.id),
            );
            const missing = user.acked.slice(0, known).filter((id) => !ids.has(id));
            if (missing.length > 0) stale(`history of ${user.id} lacks ${missing[0]}`);
          }
        } else if (roll < 0.85) {
          const answer = await send(agent, base, 'GET', `/api/v1/analytics/${user.id}`);
          count(answer.status);
          outcome.reads += 1;
          if (answer.status !== 200) {
            outcome.errors += 1;
          } else {
            outcome.checked += 1;
            const seen = (JSON.parse(answer.body) as { data: { transaction_count: number } }).data
              .transaction_count;
            if (seen < known) stale(`analytics of ${user.id}: ${seen} < ${known} acknowledged`);
          }
        } else {
          const id = user.acked[Math.floor(Math.random() * known)]!;
          const answer = await send(agent, base, 'GET', `/api/v1/transaction/${id}`);
          count(answer.status);
          outcome.reads += 1;
          outcome.checked += 1;
          if (answer.status === 404) stale(`transaction ${id} not found`);
          else if (answer.status !== 200) outcome.errors += 1;
        }
      } catch {
        outcome.errors += 1;
      }
      outcome.requests += 1;
      outcome.latenciesMs.push(performance.now() - started);
    }
  }
  try {
    await Promise.all(Array.from({ length: SETTINGS.concurrency }, () => client()));
  } finally {
    agent.destroy();
  }
}

interface ConfigurationResult {
  name: string;
  description: string;
  requestsPerSecond: number;
  /** req/s over the single-node configuration's, in the same run. */
  ratioToSingleNode: number | null;
  writesPerSecond: number;
  readsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  statuses: Record<string, number>;
  readsChecked: number;
  staleReads: number;
  staleExamples: string[];
  cacheHitRatio: number | null;
  /** Cache operations that failed during the measured load (should be 0). */
  cacheErrors: number;
  /** Of the reads the cache did not answer (they reached the database): the replica's share. */
  replicaShare: number | null;
  replicaReads: number;
  primaryReads: number;
  replicaFallbacks: number;
}

function build(): void {
  if (process.env.BENCH_SKIP_BUILD === '1') return;
  const out = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`npm run build failed:\n${out.stdout}\n${out.stderr}`);
}

async function measure(
  configuration: Configuration,
  env: Record<string, string>,
  workDir: string,
): Promise<ConfigurationResult> {
  const server = await startServer({
    name: configuration.name,
    args: [path.join(ROOT, 'dist', 'server.js')],
    env: {
      ...env,
      ...(configuration.processes > 1 ? { WEB_CONCURRENCY: String(configuration.processes) } : {}),
    },
    httpProcesses: configuration.processes,
    logFile: path.join(workDir, `${configuration.name}.log`),
    cwd: workDir,
  });
  try {
    const run = randomBytes(3).toString('hex');
    const users = Array.from({ length: SETTINGS.users }, (_, i) => ({
      id: `scale-${configuration.name.replace(/\W/g, '-')}-${run}-${i}`,
      acked: [] as string[],
    }));
    const warmup: LoadOutcome = {
      requests: 0,
      writes: 0,
      reads: 0,
      checked: 0,
      stale: 0,
      staleExamples: [],
      errors: 0,
      statuses: {},
      latenciesMs: [],
    };
    await mixedLoad(server.url, users, Date.now() + SETTINGS.warmupSeconds * 1000, warmup);
    const before = await serverCounters(server);
    const outcome: LoadOutcome = { ...warmup, requests: 0, writes: 0, reads: 0, checked: 0 };
    Object.assign(outcome, { stale: 0, staleExamples: [], errors: 0, statuses: {} });
    outcome.latenciesMs = [];
    const started = Date.now();
    await mixedLoad(server.url, users, started + SETTINGS.seconds * 1000, outcome);
    const seconds = (Date.now() - started) / 1000;
    const after = await serverCounters(server);
    const delta = (key: keyof Counters) => after[key] - before[key];
    const lookups = delta('cacheHits') + delta('cacheMisses');
    const routed = delta('replicaReads') + delta('primaryReads');
    const sorted = [...outcome.latenciesMs].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return {
      name: configuration.name,
      description: configuration.description,
      requestsPerSecond: outcome.requests / seconds,
      ratioToSingleNode: null,
      writesPerSecond: outcome.writes / seconds,
      readsPerSecond: outcome.reads / seconds,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      errors: outcome.errors,
      statuses: outcome.statuses,
      readsChecked: outcome.checked + warmup.checked,
      staleReads: outcome.stale + warmup.stale,
      staleExamples: [...warmup.staleExamples, ...outcome.staleExamples].slice(0, 5),
      cacheHitRatio: lookups > 0 ? delta('cacheHits') / lookups : null,
      cacheErrors: delta('cacheErrors'),
      replicaShare: configuration.replica && routed > 0 ? delta('replicaReads') / routed : null,
      replicaReads: delta('replicaReads'),
      primaryReads: delta('primaryReads'),
      replicaFallbacks: delta('fallbacks'),
    };
  } finally {
    await server.stop();
  }
}

export async function scaleOut(): Promise<void> {
  const started = new Date();
  const loadAverage1m = os.loadavg()[0] ?? 0;
  build();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'fido-scale-out-'));
  let pair: StreamingPair | undefined;
  const redis = new RedisServer();
  const cluster = new RedisCluster({ masters: 3, replicasPerMaster: 0 });
  const results: ConfigurationResult[] = [];
  try {
    pair = await startStreamingPair();
    await redis.start();
    await cluster.start();
    const primary = await openDatabase({
      databaseUrl: pair.primaryUrl,
      dataDir: 'unused',
      poolSize: 2,
      statementTimeoutMs: 60_000,
      connectTimeoutMs: 5_000,
      logger: createLogger('silent'),
    });
    try {
      await primary.migrate();
      const { key } = await createApiKeysService({ db: primary.db }).create({
        name: 'bench',
        scopes: ['admin'],
      });
      AUTH.authorization = `Bearer ${key}`;
    } finally {
      await primary.close();
    }
    await pair.caughtUp();
    const secretKey = randomBytes(32).toString('base64');
    for (const configuration of CONFIGURATIONS) {
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        NODE_ENV: 'production',
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        SECRET_KEY: secretKey,
        SCHEDULER: 'off',
        WORKER: 'off',
        RATE_LIMIT_MAX: '1000000',
        RATE_LIMIT_IP_MAX: '1000000',
        DATA_DIR: path.join(workDir, 'data'),
        DATABASE_URL: pair.primaryUrl,
        ...(configuration.redis === 'cluster'
          ? { REDIS_CLUSTER_NODES: cluster.seeds }
          : { REDIS_URL: redis.url }),
        CACHE_PREFIX: `fido-scale-${configuration.name.replace(/\W/g, '-')}`,
        ...(configuration.replica ? { READ_DATABASE_URL: pair.replicaUrl } : {}),
      };
      console.log(`${configuration.name}: ${configuration.description}`);
      results.push(await measure(configuration, env, workDir));
    }
  } finally {
    await redis.kill();
    await cluster.kill();
    await pair?.stop();
    if (process.env.BENCH_KEEP !== '1') rmSync(workDir, { recursive: true, force: true });
  }

  const single = results.find((r) => r.name === 'single-node')?.requestsPerSecond;
  for (const r of results) r.ratioToSingleNode = single ? r.requestsPerSecond / single : null;
  const pct = (n: number | null) => (n === null ? '–' : `${(n * 100).toFixed(0)}%`);
  console.log(
    '\nconfiguration          req/s  × single  writes/s  reads/s  p50 ms  p99 ms  cache hits  replica share  checked  stale  errors  cache errors',
  );
  for (const r of results) {
    console.log(
      [
        r.name.padEnd(21),
        r.requestsPerSecond.toFixed(0).padStart(6),
        (r.ratioToSingleNode?.toFixed(2) ?? '–').padStart(9),
        r.writesPerSecond.toFixed(0).padStart(9),
        r.readsPerSecond.toFixed(0).padStart(8),
        r.p50Ms.toFixed(1).padStart(7),
        r.p99Ms.toFixed(1).padStart(7),
        pct(r.cacheHitRatio).padStart(11),
        pct(r.replicaShare).padStart(14),
        String(r.readsChecked).padStart(8),
        String(r.staleReads).padStart(6),
        String(r.errors).padStart(7),
        String(r.cacheErrors).padStart(13),
      ].join(' '),
    );
    for (const example of r.staleExamples) console.log(`  stale: ${example}`);
  }
  const notes = [
    'Redis: a private redis-server (REDIS_URL), and for scale-out a private 3-master Redis Cluster ' +
      '(REDIS_CLUSTER_NODES), both on this machine.',
    'replica share: of the reads the cache did not answer (they reached the database), those the ' +
      'replica served; the others went to the primary (the replica had not yet replayed the ' +
      "user's latest write, or a fresh floor).",
    `machine: ${os.cpus().length} cores, load ${loadAverage1m.toFixed(1)} at start; one run each.`,
  ];
  for (const note of notes) console.log(`- ${note}`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const commit = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: started.toISOString(),
        commit: commit.status === 0 ? commit.stdout.trim() : null,
        node: process.version,
        settings: SETTINGS,
        machine: { cpus: os.cpus().length, loadAverage1m },
        notes,
        configurations: results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`- written to ${path.relative(process.cwd(), file)}`);
  const stale = results.reduce((n, r) => n + r.staleReads, 0);
  if (stale > 0) throw new Error(`${stale} stale reads`);
}
