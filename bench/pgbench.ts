/**
 * The database's own ceiling for the create route, measured with pgbench against the bench
 * database: a single INSERT into `transactions` (autocommit), and the one statement the API runs
 * for a create, without the API.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { transactions } from '../src/db/schema/index.js';
import { ident } from '../src/db/sql.js';
import { ROLLUP_LOCK_CLASS } from '../src/modules/analytics/index.js';
import { CREATE_STATEMENT, TRANSACTION_INSERT_COLUMNS } from '../src/modules/transactions/index.js';

export interface PgbenchResult {
  name: string;
  description: string;
  transactionsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

export function pgbenchPath(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' });
  const bin = found.stdout.trim();
  return found.status === 0 && bin !== '' ? bin : undefined;
}

const CIPHERTEXT = `v1.kbench.${'A'.repeat(60)}`;

const SINGLE_INSERT = `\\set n random(1, 1000000000)
insert into ${ident(transactions)} (${TRANSACTION_INSERT_COLUMNS.map(ident).join(', ')})
values ('pgbench-' || :client_id || '-' || :n, gen_random_uuid(), '${CIPHERTEXT}', now(),
  100 + :n % 100000, 'credit', 'GHS', 'bench', '{"source":"bench"}', 1, now(), now());
`;

/** What the API binds to CREATE_STATEMENT's $1…$14, as pgbench expressions (in that order). */
const CREATE_VALUES = [
  String(ROLLUP_LOCK_CLASS),
  `'pgtx-' || :client_id || '-' || :n`,
  'gen_random_uuid()',
  `'${CIPHERTEXT}'`,
  'now()',
  '100 + :n % 100000',
  `'credit'`,
  `'GHS'`,
  `'bench'`,
  `'{"source":"bench"}'`,
  'now()',
  `'UTC'`,
  'gen_random_uuid()',
  `'{"transaction":{"currency":"GHS","transaction_type":"credit","version":1}}'`,
];

/** The API's own create statement (one per POST /api/v1/transaction/), its values inlined. */
const CREATE_TRANSACTION = `\\set n random(1, 1000000000)
${CREATE_STATEMENT.text.trim().replace(/\$(\d+)/g, (_, i: string) => `(${CREATE_VALUES[Number(i) - 1]})`)};
`;

export const PGBENCH_SCRIPTS = [
  {
    name: 'pgbench-single-insert',
    description: 'pgbench: one INSERT into transactions per transaction (autocommit)',
    script: SINGLE_INSERT,
  },
  {
    name: 'pgbench-create-statement',
    description:
      "pgbench: the API create's one statement (lock, insert, 2 rollup upserts, event), autocommit",
    script: CREATE_TRANSACTION,
  },
] as const;

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/**
 * Runs one script for `seconds` with `clients` connections (the API's pool size, so the database
 * sees the concurrency the API gives it). Latencies come from pgbench's per-transaction log.
 */
export async function runPgbench(options: {
  bin: string;
  url: string;
  workDir: string;
  name: string;
  description: string;
  script: string;
  seconds: number;
  clients: number;
}): Promise<PgbenchResult> {
  const scriptFile = path.join(options.workDir, `${options.name}.sql`);
  writeFileSync(scriptFile, options.script);
  const logPrefix = `${options.name}-log`;
  const args = [
    '--no-vacuum',
    '--protocol=extended',
    `--client=${options.clients}`,
    '--jobs=2',
    `--time=${options.seconds}`,
    `--file=${scriptFile}`,
    '--log',
    `--log-prefix=${path.join(options.workDir, logPrefix)}`,
    options.url,
  ];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(options.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    // pgbench stops itself after --time; this only bounds a pgbench that hangs.
    const guard = setTimeout(() => child.kill('SIGKILL'), (options.seconds + 30) * 1000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(guard);
      if (code === 0) resolve(text);
      else reject(new Error(`pgbench ${options.name} exited ${code}:\n${text}`));
    });
  });
  const tps = Number(/tps = ([\d.]+)/.exec(output)?.[1] ?? NaN);
  const failed = Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0);
  const latencies: number[] = [];
  for (const file of readdirSync(options.workDir)) {
    if (!file.startsWith(`${logPrefix}.`)) continue;
    for (const line of readFileSync(path.join(options.workDir, file), 'utf8').split('\n')) {
      // client_id transaction_no time_us script_no epoch epoch_us
      const micros = Number(line.split(' ')[2]);
      if (Number.isFinite(micros)) latencies.push(micros / 1000);
    }
  }
  latencies.sort((a, b) => a - b);
  return {
    name: options.name,
    description: options.description,
    transactionsPerSecond: tps,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    failed,
  };
}
