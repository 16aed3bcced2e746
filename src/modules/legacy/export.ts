/**
 * The export: every transaction (or one user's, or those since a date) with its name decrypted,
 * as NDJSON (one transaction per line, the API's fields: `import` reads it back losslessly) or CSV
 * (for a spreadsheet: RFC 4180 quoting, and text cells that a spreadsheet would run as a formula
 * are defused). Streamed page by page with back-pressure: memory holds one page.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { FieldCipher } from '../../platform/crypto.js';
import type { Db } from '../../db/client.js';
import { transactionView, type Transaction, type TransactionRow } from '../transactions/index.js';
import { exportCount, exportPage, type ExportFilter } from './legacy.repository.js';
import type { Progress } from './progress.js';

const EXPORT_PAGE_ROWS = 2_000;

export type ExportFormat = 'ndjson' | 'csv';

/** A transaction as the export writes it: the API's view (`legacy_id` second, after `id`). */
export type ExportedTransaction = Transaction;

const CSV_COLUMNS = [
  'id',
  'legacy_id',
  'user_id',
  'full_name',
  'transaction_date',
  'transaction_amount',
  'currency',
  'transaction_type',
  'description',
  'metadata',
  'created_at',
  'updated_at',
  'version',
] as const;
/** Columns whose text comes from users: the ones a formula could hide in. */
const CSV_TEXT_COLUMNS = new Set(['user_id', 'full_name', 'description', 'metadata']);

/**
 * A CSV cell: quoted when it holds a separator, a quote, a line break or edge spaces (RFC 4180);
 * a user's text starting with = + - @ (or a tab or carriage return) is prefixed with ' so that no
 * spreadsheet evaluates it (OWASP's advice on CSV injection).
 */
export function csvCell(value: string, userText: boolean): string {
  let text = value;
  if (userText && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * The API's view of the row (transactionView: the export cannot drift from it), its fields in the
 * order exports have always had: `legacy_id` beside `id`, then the view's order.
 */
function toTransaction(row: TransactionRow, cipher: FieldCipher): ExportedTransaction {
  const { id, legacy_id, user_id, ...rest } = transactionView(row, cipher);
  return { id, legacy_id, user_id, ...rest };
}

function csvLine(transaction: ExportedTransaction): string {
  return CSV_COLUMNS.map((column) => {
    const value = transaction[column];
    if (value === null) return '';
    const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    return csvCell(text, CSV_TEXT_COLUMNS.has(column));
  }).join(',');
}

export async function runExport(options: {
  db: Db;
  cipher: FieldCipher;
  filter: ExportFilter;
  format: ExportFormat;
  out: Writable;
  progress?: Progress;
  signal?: AbortSignal;
}): Promise<{ rows: number; seconds: number; interrupted: boolean }> {
  const { db, cipher, filter, out } = options;
  const started = Date.now();
  const total = await exportCount(db, filter);
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  if (options.format === 'csv') await write(`${CSV_COLUMNS.join(',')}\r\n`);
  let rows = 0;
  let after: { userId: string; id: string } | undefined;
  let interrupted = false;
  for (;;) {
    const page = await exportPage(db, filter, after, EXPORT_PAGE_ROWS);
    if (page.length === 0) break;
    const lines = page.map((row) => {
      const transaction = toTransaction(row, cipher);
      return options.format === 'csv'
        ? `${csvLine(transaction)}\r\n`
        : `${JSON.stringify(transaction)}\n`;
    });
    await write(lines.join(''));
    rows += page.length;
    const last = page.at(-1)!;
    after = { userId: last.userId, id: last.id };
    options.progress?.update(rows, total > 0 ? Math.min(1, rows / total) : undefined);
    if (page.length < EXPORT_PAGE_ROWS) break;
    if (options.signal?.aborted) {
      interrupted = true;
      break;
    }
  }
  options.progress?.done();
  return { rows, seconds: (Date.now() - started) / 1000, interrupted };
}
