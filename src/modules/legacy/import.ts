/**
 * The import: documents streamed from a file, checked and decrypted one by one, stored in batches
 * (one statement each, rollups included), rejections written to the report as they happen. Memory
 * stays bounded by one batch and one document, whatever the file's size.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { v7 as uuidv7 } from 'uuid';
import type { FieldCipher } from '../../platform/crypto.js';
import type { Db } from '../../db/client.js';
import type { Decoded, ImportRow } from './documents.js';
import type { TransactionRow } from '../transactions/index.js';
import { insertImportBatch, ownersOfLegacyIds, type ImportEvent } from './legacy.repository.js';
import type { Progress } from './progress.js';
import { readDocuments } from './reader.js';

/** Rows per statement: large enough that a round trip carries many, small enough that a batch
 * (a few MB of parameters) is cheap to send again after a crash. */
export const IMPORT_BATCH_ROWS_DEFAULT = 5_000;
export const IMPORT_BATCH_ROWS_MAX = 20_000;
/** Rejections kept in memory for the summary; all of them go to the report file. */
const SUMMARY_REJECTIONS_MAX = 20;

export interface Rejection {
  /** The line of the file the document starts on (1-based). */
  line: number;
  /** The document's position in the file (1-based): the line in JSON lines, the element in an array. */
  document: number;
  legacy_id: string | null;
  reason: string;
}

export interface ImportCounts {
  documents: number;
  /** Stored by this run. */
  imported: number;
  /** Already stored (by an earlier run, or earlier in this file): nothing added. */
  already_present: number;
  rejected: number;
  /** Dry run: documents that would be imported or found present. */
  valid: number;
}

export interface ImportResult {
  counts: ImportCounts;
  /** The first rejections (all of them are in the report). */
  firstRejections: Rejection[];
  seconds: number;
  interrupted: boolean;
}

export interface ImportOptions {
  file: string;
  /** Turns a document's text into a row, or a reason it cannot be one. */
  decode: (text: string) => Decoded;
  /** The database; absent for a dry run, which stores nothing. */
  db?: Db | undefined;
  cipher?: FieldCipher | undefined;
  timeZone: string;
  /** Append a `transaction.created` event per stored row (off by default: see docs/migration.md). */
  emitEvents?: boolean;
  /** Builds an event's payload from a stored row (the transactions module's definition). */
  eventPayload?: (row: TransactionRow) => Record<string, unknown>;
  batchRows?: number;
  /** The report file (JSON), written as the import goes and completed at the end. */
  reportFile?: string | undefined;
  progress?: Progress;
  /** After each committed batch, with the users it touched (cache invalidation). */
  afterBatch?: (userIds: string[]) => Promise<void>;
  /** Stops after the batch in flight; what was stored stays, a re-run continues. */
  signal?: AbortSignal;
}

/** Streams the report: `{"rejected": [ … ], "counts": { … }}`, renamed into place when complete. */
class ReportWriter {
  #out: WriteStream;
  #first = true;
  readonly #partial: string;

  constructor(readonly file: string) {
    this.#partial = `${file}.partial`;
    this.#out = createWriteStream(this.#partial, { encoding: 'utf8' });
    this.#out.write('{\n  "rejected": [');
  }

  async add(rejection: Rejection): Promise<void> {
    const ok = this.#out.write(`${this.#first ? '\n' : ',\n'}    ${JSON.stringify(rejection)}`);
    this.#first = false;
    if (!ok) await once(this.#out, 'drain');
  }

  async finish(summary: Record<string, unknown>): Promise<void> {
    const rest = Object.entries(summary)
      .map(([key, value]) => `,\n  ${JSON.stringify(key)}: ${JSON.stringify(value)}`)
      .join('');
    this.#out.end(`${this.#first ? '' : '\n  '}]${rest}\n}\n`);
    await once(this.#out, 'finish');
    await rename(this.#partial, this.file);
  }

  async abandon(): Promise<void> {
    this.#out.end();
    await once(this.#out, 'finish');
  }
}

interface Pending {
  row: ImportRow;
  line: number;
  document: number;
}

export async function runImport(options: ImportOptions): Promise<ImportResult> {
  const batchRows = options.batchRows ?? IMPORT_BATCH_ROWS_DEFAULT;
  const started = Date.now();
  const { size: fileBytes } = await stat(options.file);
  const counts: ImportCounts = {
    documents: 0,
    imported: 0,
    already_present: 0,
    rejected: 0,
    valid: 0,
  };
  const firstRejections: Rejection[] = [];
  const report = options.reportFile ? new ReportWriter(options.reportFile) : undefined;
  const reject = async (rejection: Rejection) => {
    counts.rejected += 1;
    if (firstRejections.length < SUMMARY_REJECTIONS_MAX) firstRejections.push(rejection);
    await report?.add(rejection);
  };

  /** Stores a batch; resolves once it is committed and its skipped rows are accounted for. */
  const store = async (batch: Pending[]): Promise<void> => {
    const { db, cipher } = options;
    if (!db || !cipher) throw new Error('an import that stores rows needs the database and cipher');
    // ObjectIds already stored (a re-run, or another user's document with the same _id) are
    // found by one index lookup and not sent again: a re-run costs no encryption, and the insert
    // only meets conflicts when two imports race.
    const owners = await ownersOfLegacyIds(
      db,
      batch.flatMap(({ row }) => (row.legacyId === null ? [] : [row.legacyId])),
    );
    const fresh = batch.filter(({ row }) => row.legacyId === null || !owners.has(row.legacyId));
    const rows = fresh.map(({ row }): TransactionRow => {
      const { fullName, ...columns } = row;
      return { ...columns, fullNameCiphertext: cipher.encrypt(fullName, row.id) };
    });
    const events: ImportEvent[] | undefined =
      options.emitEvents && options.eventPayload
        ? rows.map((row) => ({
            id: uuidv7(),
            transactionId: row.id,
            payload: options.eventPayload!(row),
          }))
        : undefined;
    const inserted = await insertImportBatch(db, rows, { timeZone: options.timeZone, events });
    counts.imported += inserted.size;
    for (const { row, line, document } of batch) {
      if (inserted.has(row.id)) continue;
      const owner = row.legacyId === null ? undefined : owners.get(row.legacyId);
      if (owner === undefined || owner === row.userId) {
        counts.already_present += 1;
      } else {
        await reject({
          line,
          document,
          legacy_id: row.legacyId,
          reason: '_id: already imported for another user_id',
        });
      }
    }
    await options.afterBatch?.([...new Set(rows.map((row) => row.userId))]);
  };

  const progress = { bytesRead: 0 };
  let batch: Pending[] = [];
  let batchIds = new Set<string>();
  // One batch is stored while the next is read and decrypted: the database and this process
  // work at the same time.
  let inFlight: Promise<void> | undefined;
  let interrupted = false;
  let failed = false;
  const flush = async () => {
    const current = batch;
    batch = [];
    batchIds = new Set();
    if (options.db === undefined) return;
    await inFlight;
    inFlight = store(current);
    // Failures surface at the next await of inFlight; keep them from being unhandled meanwhile.
    inFlight.catch(() => {
      failed = true;
    });
  };

  try {
    for await (const raw of readDocuments(options.file, progress)) {
      counts.documents += 1;
      const decoded: Decoded =
        'error' in raw
          ? { ok: false, legacyId: null, reason: raw.error }
          : options.decode(raw.text);
      if (!decoded.ok) {
        await reject({
          line: raw.line,
          document: raw.ordinal,
          legacy_id: decoded.legacyId,
          reason: decoded.reason,
        });
      } else {
        counts.valid += 1;
        // The same document twice in one batch: the copy goes in the next batch, which finds it
        // stored, as a re-run would.
        if (batchIds.has(decoded.row.id)) await flush();
        batch.push({ row: decoded.row, line: raw.line, document: raw.ordinal });
        batchIds.add(decoded.row.id);
        if (batch.length >= batchRows) await flush();
      }
      options.progress?.update(
        counts.documents,
        fileBytes > 0 ? progress.bytesRead / fileBytes : undefined,
      );
      if (failed) await inFlight;
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
    }
    if (!interrupted) await flush();
    await inFlight;
  } catch (error) {
    await inFlight?.catch(() => undefined);
    await report?.abandon();
    options.progress?.done();
    throw error;
  }
  options.progress?.done();
  const seconds = (Date.now() - started) / 1000;
  await report?.finish({
    counts,
    file: options.file,
    dry_run: options.db === undefined,
    interrupted,
    seconds: Math.round(seconds * 1000) / 1000,
  });
  return { counts, firstRejections, seconds, interrupted };
}
