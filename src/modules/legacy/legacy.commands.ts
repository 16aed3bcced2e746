/**
 * The CLI's `import-legacy`, `import` and `export` commands. Exit status: 0 when every document
 * was imported (or already was), 1 when some were rejected, 2 on a fatal error (a bad key, an
 * unreadable file, the database down), 130 when interrupted.
 */
import { createWriteStream } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Config } from '../../config.js';
import { FieldCipher, type KeyRing } from '../../platform/crypto.js';
import type { DatabaseHandle } from '../../db/client.js';
import { parseInstant } from '../../domain/dates.js';
import { isCurrencyCode } from '../../domain/money.js';
import { eventPayload } from '../transactions/index.js';
import { decodeExportedDocument, decodeLegacyDocument } from './documents.js';
import { runExport } from './export.js';
import { FernetKey, FernetKeyError } from './fernet.js';
import { IMPORT_BATCH_ROWS_DEFAULT, IMPORT_BATCH_ROWS_MAX, runImport } from './import.js';
import { createProgress } from './progress.js';

export const MIGRATION_USAGE = `  import-legacy --file FILE [--report FILE] [--currency CODE] [--dry-run] [--emit-events]
                              import the old FastAPI + MongoDB service's mongoexport (JSON lines
                              or --jsonArray); its SECRET_KEY in LEGACY_SECRET_KEY. Idempotent and
                              resumable: run it again after an interruption (docs/migration.md)
  import --file FILE [--report FILE] [--dry-run] [--emit-events]
                              import an NDJSON file written by \`export\` (ids, names, dates kept)
  export [--user ID] [--format ndjson|csv] [--since DATE] [--output FILE]
                              write transactions with decrypted names to stdout (or FILE)
`;

export interface MigrationOptions {
  file?: string | undefined;
  report?: string | undefined;
  currency?: string | undefined;
  'dry-run'?: boolean | undefined;
  'emit-events'?: boolean | undefined;
  'batch-size'?: string | undefined;
  user?: string | undefined;
  format?: string | undefined;
  since?: string | undefined;
  output?: string | undefined;
}

export interface MigrationContext {
  config: Config;
  /** Opens (and migrates) the database; not called by a dry run. */
  openDatabase: () => Promise<DatabaseHandle>;
  loadKeyRing: () => Promise<KeyRing>;
  /** Invalidates the users' cached reads (Redis) after a batch; resolves false on failure. */
  invalidate?: (userIds: string[]) => Promise<void>;
  stdout: Writable;
  stderr: Writable & { isTTY?: boolean };
  signal?: AbortSignal;
}

class UsageError extends Error {}

function fail(ctx: MigrationContext, message: string): number {
  ctx.stderr.write(`${message}\n`);
  return 2;
}

async function readableFile(file: string | undefined): Promise<string> {
  if (!file) throw new UsageError('--file FILE is required');
  try {
    await access(file, constants.R_OK);
    if (!(await stat(file)).isFile()) throw new Error('not a file');
  } catch {
    throw new UsageError(`Cannot read ${file}: not a readable file`);
  }
  return file;
}

function batchRows(options: MigrationOptions): number {
  const raw = options['batch-size'];
  if (raw === undefined) return IMPORT_BATCH_ROWS_DEFAULT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > IMPORT_BATCH_ROWS_MAX) {
    throw new UsageError(`--batch-size must be a whole number from 1 to ${IMPORT_BATCH_ROWS_MAX}`);
  }
  return n;
}

async function importCommand(
  ctx: MigrationContext,
  options: MigrationOptions,
  kind: 'legacy' | 'export',
): Promise<number> {
  let decode;
  let currency: string | undefined;
  let file: string;
  let rows: number;
  try {
    if (kind === 'legacy') {
      currency = (options.currency ?? ctx.config.defaultCurrency).toUpperCase();
      if (!isCurrencyCode(currency)) {
        throw new UsageError(`--currency must be an ISO 4217 code (got "${options.currency}")`);
      }
      if (!ctx.config.legacySecretKey) {
        throw new UsageError(
          "LEGACY_SECRET_KEY is not set: put the old service's SECRET_KEY (its Fernet key) in the environment or .env",
        );
      }
      let key: FernetKey;
      try {
        key = new FernetKey(ctx.config.legacySecretKey);
      } catch (error) {
        if (error instanceof FernetKeyError) throw new UsageError(error.message);
        throw error;
      }
      const code = currency;
      decode = (text: string) => decodeLegacyDocument(text, key, code);
    } else {
      decode = decodeExportedDocument;
    }
    file = await readableFile(options.file);
    rows = batchRows(options);
  } catch (error) {
    if (error instanceof UsageError) return fail(ctx, error.message);
    throw error;
  }

  const dryRun = options['dry-run'] === true;
  let database: DatabaseHandle | undefined;
  try {
    let cipher: FieldCipher | undefined;
    if (!dryRun) {
      database = await ctx.openDatabase();
      cipher = new FieldCipher(await ctx.loadKeyRing());
    }
    const result = await runImport({
      file,
      decode,
      db: database?.db,
      cipher,
      timeZone: ctx.config.analyticsTimeZone,
      emitEvents: options['emit-events'] === true,
      eventPayload: (row) => eventPayload(row),
      batchRows: rows,
      reportFile: options.report,
      progress: createProgress(ctx.stderr, 'documents'),
      afterBatch: ctx.invalidate,
      signal: ctx.signal,
    });
    const { counts } = result;
    const rate =
      result.seconds > 0 ? Math.round(counts.documents / result.seconds) : counts.documents;
    const lines = [
      `${dryRun ? 'Dry run (nothing stored): ' : ''}${counts.documents} documents in ${result.seconds.toFixed(1)} s (${rate}/s)` +
        (currency ? `, amounts in ${currency}` : ''),
      dryRun
        ? `  valid:            ${counts.valid}`
        : `  imported:         ${counts.imported}\n  already present:  ${counts.already_present}`,
      `  rejected:         ${counts.rejected}${options.report ? ` (every one in ${options.report})` : ''}`,
      ...(options.report
        ? []
        : result.firstRejections.map(
            (r) => `    line ${r.line}${r.legacy_id ? ` (_id ${r.legacy_id})` : ''}: ${r.reason}`,
          )),
      ...(result.interrupted ? ['Interrupted: run the same command again to continue.'] : []),
    ];
    ctx.stdout.write(`${lines.join('\n')}\n`);
    if (result.interrupted) return 130;
    return counts.rejected > 0 ? 1 : 0;
  } catch (error) {
    // What is left is fatal: the file vanished, the database went away. What was committed stays;
    // the same command continues from there.
    return fail(
      ctx,
      `Import stopped: ${(error as Error).message}\nWhat was stored is kept; run the same command again to continue.`,
    );
  } finally {
    await database?.close();
  }
}

async function exportCommand(ctx: MigrationContext, options: MigrationOptions): Promise<number> {
  const format = options.format ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'csv') return fail(ctx, '--format must be ndjson or csv');
  const since = options.since === undefined ? undefined : parseInstant(options.since);
  if (options.since !== undefined && since === undefined) {
    return fail(ctx, '--since must be an ISO 8601 date or date-time, e.g. 2024-01-01');
  }
  let database: DatabaseHandle | undefined;
  const out: Writable = options.output
    ? createWriteStream(options.output, { encoding: 'utf8' })
    : ctx.stdout;
  try {
    database = await ctx.openDatabase();
    const cipher = new FieldCipher(await ctx.loadKeyRing());
    const result = await runExport({
      db: database.db,
      cipher,
      filter: { userId: options.user, since },
      format,
      out,
      progress: createProgress(ctx.stderr, 'transactions'),
      signal: ctx.signal,
    });
    if (options.output) {
      out.end();
      await once(out, 'finish');
    }
    ctx.stderr.write(
      `Exported ${result.rows} transactions (${format}) in ${result.seconds.toFixed(1)} s` +
        `${options.output ? ` to ${options.output}` : ''}\n`,
    );
    return result.interrupted ? 130 : 0;
  } catch (error) {
    return fail(ctx, `Export stopped: ${(error as Error).message}`);
  } finally {
    await database?.close();
  }
}

/** Runs one of the migration commands; undefined when `command` is not one of them. */
export async function runMigrationCommand(
  command: string,
  ctx: MigrationContext,
  options: MigrationOptions,
): Promise<number | undefined> {
  switch (command) {
    case 'import-legacy':
      return importCommand(ctx, options, 'legacy');
    case 'import':
      return importCommand(ctx, options, 'export');
    case 'export':
      return exportCommand(ctx, options);
    default:
      return undefined;
  }
}
