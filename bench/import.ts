/**
 * import-legacy throughput: a mongoexport of BENCH_IMPORT_DOCUMENTS documents (default 200,000
 * over 1,000 users, real Fernet tokens made by Python's cryptography) imported through the CLI
 * command's own code path, in documents per second, against two baselines measured in the same
 * run: the dry run (read, parse, check, decrypt; no database) and the bulk loader (rows and
 * rollups, nothing to read or decrypt). Then the same file again (every document already there),
 * and a reconciliation that must find the rollups exact. Target: at least 10,000 documents/s on
 * PostgreSQL.
 *
 *   npm run bench -- --scenario import                     (embedded PGlite)
 *   BENCH_DATABASE_URL=postgres://… npm run bench -- --scenario import
 *
 * Results: bench/results/import/<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.js';
import { reconcileAll } from '../src/modules/analytics/index.js';
import { runMigrationCommand, type MigrationOptions } from '../src/modules/legacy/index.js';
import { FieldCipher } from '../src/platform/crypto.js';
import { createLogger } from '../src/platform/logging.js';
import { fernetFixtures, makeLegacyExport } from '../test/helpers/legacy-export.js';
import { openBenchDatabase } from './http.js';
import { bulkLoad } from './seed.js';

const DOCUMENTS = Number(process.env.BENCH_IMPORT_DOCUMENTS ?? 200_000);
const USERS = 1_000;
const TARGET_DOCUMENTS_PER_SECOND = 10_000;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = path.join(ROOT, 'bench', 'results', 'import');

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void) {
    this.text += chunk.toString('utf8');
    done();
  }
}

export async function importScenario(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fido-bench-import-'));
  const database = await openBenchDatabase();
  const keyRing = { activeKeyId: 'bench', keys: new Map([['bench', randomBytes(32)]]) };
  const runId = randomBytes(3).toString('hex');
  const started = new Date();
  const loadAverage1m = os.loadavg()[0] ?? 0;
  try {
    const file = path.join(dir, 'transactions.json');
    const legacy = makeLegacyExport({
      users: USERS,
      good: DOCUMENTS,
      userPrefix: `import-${runId}`,
    });
    await writeFile(file, legacy.jsonLines());
    const megabytes = (await stat(file)).size / 1024 / 1024;
    console.log(
      `mongoexport file: ${DOCUMENTS} documents over ${USERS} users, ${megabytes.toFixed(0)} MB ` +
        `(${database.handle.kind}; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores)`,
    );
    const config = loadConfig({ LEGACY_SECRET_KEY: fernetFixtures.key, LOG_LEVEL: 'silent' });
    const command = async (options: MigrationOptions) => {
      const stdout = new Sink();
      const started = process.hrtime.bigint();
      const code = await runMigrationCommand(
        'import-legacy',
        {
          config,
          openDatabase: async () => ({ ...database.handle, close: async () => {} }),
          loadKeyRing: async () => keyRing,
          stdout,
          stderr: new Sink(),
        },
        { file, ...options },
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) throw new Error(`import-legacy exited ${code}: ${stdout.text}`);
      return { seconds, perSecond: DOCUMENTS / seconds, summary: stdout.text };
    };

    const dryRun = await command({ 'dry-run': true });
    const loaderStarted = process.hrtime.bigint();
    await bulkLoad(database.handle.db, new FieldCipher(keyRing), {
      userIds: Array.from({ length: USERS }, (_, i) => `loader-${runId}-${i}`),
      perUser: DOCUMENTS / USERS,
      days: 730,
      end: new Date('2025-12-31T00:00:00Z'),
    });
    const loaderSeconds = Number(process.hrtime.bigint() - loaderStarted) / 1e9;
    const imported = await command({});
    if (!imported.summary.includes(`imported:         ${DOCUMENTS}`)) {
      throw new Error(`the import did not store every document:\n${imported.summary}`);
    }
    const again = await command({});
    const drift = await reconcileAll(database.handle.db, {
      timeZone: 'UTC',
      batchSize: 500,
      logger: createLogger('silent'),
    });
    if (drift.drift.rows > 0)
      throw new Error(`the import left ${drift.drift.rows} rollup rows wrong`);

    const loaderRate = DOCUMENTS / loaderSeconds;
    const runs = [
      {
        run: 'dry run (read, check, decrypt)',
        seconds: dryRun.seconds.toFixed(1),
        'documents/s': Math.round(dryRun.perSecond),
        '× dry run': '1.00',
      },
      {
        run: 'bulk loader (no file, no Fernet)',
        seconds: loaderSeconds.toFixed(1),
        'documents/s': Math.round(loaderRate),
        '× dry run': (loaderRate / dryRun.perSecond).toFixed(2),
      },
      {
        run: 'import-legacy',
        seconds: imported.seconds.toFixed(1),
        'documents/s': Math.round(imported.perSecond),
        '× dry run': (imported.perSecond / dryRun.perSecond).toFixed(2),
      },
      {
        run: 'import-legacy again (all present)',
        seconds: again.seconds.toFixed(1),
        'documents/s': Math.round(again.perSecond),
        '× dry run': (again.perSecond / dryRun.perSecond).toFixed(2),
      },
    ];
    console.table(runs);
    console.log(
      `import-legacy: ${Math.round(imported.perSecond)} documents/s (target ≥ ${TARGET_DOCUMENTS_PER_SECOND}: ` +
        `${imported.perSecond >= TARGET_DOCUMENTS_PER_SECOND ? 'met' : 'NOT met'}); ` +
        `${(imported.perSecond / loaderRate).toFixed(2)} × the bulk loader; reconciliation found no drift`,
    );
    await mkdir(RESULTS_DIR, { recursive: true });
    const commit = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
    const target = path.join(RESULTS_DIR, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
    const results = {
      date: started.toISOString(),
      commit: commit.status === 0 ? commit.stdout.trim() : null,
      node: process.version,
      database: database.handle.kind,
      machine: { cpus: os.cpus().length, loadAverage1m },
      documents: DOCUMENTS,
      users: USERS,
      importDocumentsPerSecond: imported.perSecond,
      ratioToBulkLoader: imported.perSecond / loaderRate,
      targetDocumentsPerSecond: TARGET_DOCUMENTS_PER_SECOND,
      runs,
    };
    await writeFile(target, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`written to ${path.relative(process.cwd(), target)}`);
  } finally {
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }
}
