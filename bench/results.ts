/** Results: the printed table, bench/results/<date>.json, and the change since the last run. */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface ScenarioResult {
  name: string;
  /** `http`: autocannon against a server; `pgbench`: the database alone. */
  kind: 'http' | 'pgbench';
  target: string;
  description: string;
  /** Requests (or database transactions, for pgbench) per second. */
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  statusCodes: Record<string, number>;
  rssMaxMb: number | null;
  /** Server CPU time (user + system) over the load's wall time, in % of one core. */
  serverCpuPercent: number | null;
  /** Server CPU time per response, in ms. */
  serverCpuMsPerRequest: number | null;
  /** Share of cache lookups that hit during the measured load (from the API's /metrics). */
  cacheHitRatio: number | null;
  /** Cache operations that failed during the measured load (the database answered instead). */
  cacheErrors: number | null;
  /** The API's event-loop delay p99 over the measured load (prom-client, from /metrics). */
  eventLoopP99Ms: number | null;
  /** req/s over the hello-world ceiling's req/s. */
  ratioToCeiling: number | null;
  /**
   * CPU per request over the hello-world ceiling's CPU per request in the same run (the floor a
   * request costs on this machine). Absent in files written before it existed.
   */
  cpuRatioToCeiling?: number | null;
  /** For creates: req/s over pgbench's single-INSERT rate. */
  ratioToDbCeiling: number | null;
  /**
   * For a scenario on several HTTP processes: req/s over its 1-process counterpart's req/s in the
   * same run (null when that did not run). Absent in files written before it existed.
   */
  ratioToOneProcess?: number | null;
  /** On the default configuration: the event worker's backlog when the load ended. */
  workerBacklogAtEnd?: number | null;
  /** How long the worker took to catch up after the load (its CPU is in serverCpuMsPerRequest). */
  drainMs?: number | null;
  /** On the default configuration: req/s, and CPU per request, over the API-only scenario's. */
  ratioToApiOnly?: number | null;
  cpuRatioToApiOnly?: number | null;
  /** `webhook-delivery`: deliveries the receiver got, and POSTs of a delivery it already had. */
  webhooksDelivered?: number;
  webhookPostsRepeated?: number;
  /** `webhook-delivery`, warm-up included: automatic attempts in the webhook's delivery log. */
  webhookAttemptsLogged?: number;
}

/** A row's optional figures, none measured yet: spread, then set the ones a scenario has. */
export function unmeasured() {
  return {
    rssMaxMb: null,
    serverCpuPercent: null,
    serverCpuMsPerRequest: null,
    cacheHitRatio: null,
    cacheErrors: null,
    eventLoopP99Ms: null,
    ratioToCeiling: null,
    ratioToDbCeiling: null,
    ratioToOneProcess: null,
  } satisfies Partial<ScenarioResult>;
}

export interface ResultsFile {
  date: string;
  commit: string | null;
  /** Whether src/ differed from that commit when the run started (others edit it too). */
  srcModified: boolean;
  node: string;
  database: string;
  databaseKind: 'postgres' | 'pglite';
  cache: 'redis' | 'memory';
  /** loadAverage1m: the machine's load when the run started (other work skews the figures). */
  machine: { cpus: number; cpuModel: string; memoryMb: number; loadAverage1m: number };
  settings: Record<string, number | string>;
  notes: string[];
  scenarios: ScenarioResult[];
}

const fixed = (n: number | null | undefined, digits: number) =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits);

function percentChange(now: number, before: number | undefined): string {
  if (before === undefined || before === 0 || !Number.isFinite(before)) return '–';
  const change = ((now - before) / before) * 100;
  return `${change >= 0 ? '+' : ''}${change.toFixed(0)}%`;
}

function table(header: string[], rows: string[][], leftColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The newest earlier results file of the same kind (database and cache), if any. */
function previousResults(
  dir: string,
  current: ResultsFile,
  currentFile: string,
): { file: string; results: ResultsFile } | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== currentFile)
    .sort()
    .reverse();
  for (const file of files) {
    try {
      const results = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as ResultsFile;
      if (
        results.date < current.date &&
        results.databaseKind === current.databaseKind &&
        results.cache === current.cache
      ) {
        return { file, results };
      }
    } catch {
      // Not a results file of ours: skip it.
    }
  }
  return undefined;
}

/** Prints the table and the comparison, and writes `<dir>/<date>.json`. */
export function report(results: ResultsFile, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const fileName = `${results.date.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}.json`;
  const previous = previousResults(dir, results, fileName);
  const before = new Map(previous?.results.scenarios.map((s) => [s.name, s]) ?? []);

  const header = [
    'scenario',
    'req/s',
    'p50 ms',
    'p99 ms',
    'errors',
    'RSS MB',
    'CPU %',
    'CPU ms/req',
    'cache hit',
    'cache err',
    'loop p99',
    '× ceiling',
    '× hello CPU',
    '× pgbench',
    '× 1 process',
    'Δ req/s',
    'Δ p99',
  ];
  const rows = results.scenarios.map((s) => {
    const old = before.get(s.name);
    return [
      s.name,
      fixed(s.requestsPerSecond, 0),
      fixed(s.p50Ms, 1),
      fixed(s.p99Ms, 1),
      String(s.errors),
      fixed(s.rssMaxMb, 0),
      fixed(s.serverCpuPercent, 0),
      fixed(s.serverCpuMsPerRequest, 3),
      s.cacheHitRatio === null ? '–' : `${(s.cacheHitRatio * 100).toFixed(0)}%`,
      s.cacheErrors === null ? '–' : String(s.cacheErrors),
      fixed(s.eventLoopP99Ms, 0),
      fixed(s.ratioToCeiling, 3),
      fixed(s.cpuRatioToCeiling, 1),
      fixed(s.ratioToDbCeiling, 2),
      fixed(s.ratioToOneProcess, 2),
      percentChange(s.requestsPerSecond, old?.requestsPerSecond),
      percentChange(s.p99Ms, old?.p99Ms),
    ];
  });

  console.log(
    `\n${results.database}, ${results.cache} cache, Node ${results.node}, ` +
      `${results.machine.cpus} × ${results.machine.cpuModel} (load ${results.machine.loadAverage1m.toFixed(1)} at start), commit ${results.commit?.slice(0, 7) ?? '?'}` +
      `${results.srcModified ? ' (src/ modified)' : ''}`,
  );
  console.log(table(header, rows));
  for (const s of results.scenarios) {
    const odd = Object.entries(s.statusCodes).filter(([code]) => !code.startsWith('2'));
    if (odd.length > 0) {
      console.log(`  ${s.name}: ${odd.map(([code, n]) => `${n} × ${code}`).join(', ')}`);
    }
  }
  for (const s of results.scenarios) {
    if (s.drainMs === undefined || s.drainMs === null) continue;
    console.log(
      `  ${s.name}: worker backlog ${s.workerBacklogAtEnd ?? '?'} at the end of the load, ` +
        `caught up ${((s.drainMs ?? 0) / 1000).toFixed(1)} s later; × API only: ` +
        `req/s ${fixed(s.ratioToApiOnly, 2)}, CPU per request (catch-up included) ${fixed(s.cpuRatioToApiOnly, 2)}`,
    );
  }
  for (const s of results.scenarios) {
    if (s.webhooksDelivered === undefined) continue;
    console.log(
      `  ${s.name}: ${s.webhooksDelivered} webhooks delivered (${s.webhookPostsRepeated ?? 0} sent again; ` +
        `${s.webhookAttemptsLogged ?? '?'} attempts logged, warm-up included), ` +
        `worker CPU ${fixed(s.serverCpuMsPerRequest, 3)} ms per delivery, ` +
        `${fixed(s.cpuRatioToCeiling, 1)} × the hello world's CPU per request`,
    );
  }
  console.log('');
  for (const note of results.notes) console.log(`- ${note}`);
  console.log(
    previous
      ? `- Δ: change from ${previous.file} (${previous.results.database}, ${previous.results.cache} cache, ` +
          `commit ${previous.results.commit?.slice(0, 7) ?? '?'}); ` +
          'one run each, so treat req/s changes within ±15% and p99 changes of a few ms as noise until repeated'
      : `- Δ: no earlier results file for ${results.databaseKind} with the ${results.cache} cache`,
  );
  const target = path.join(dir, fileName);
  writeFileSync(target, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`- written to ${path.relative(process.cwd(), target)}`);
}
