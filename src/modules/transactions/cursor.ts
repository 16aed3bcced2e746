import { INSTANT_MAX_MS, INSTANT_MIN_MS } from '../../domain/dates.js';
import { isCanonicalUuid } from '../../domain/ids.js';
import type { HistoryPosition } from './transactions.repository.js';

/**
 * History cursors are opaque to clients: base64url of "<epoch ms>.<id>" of the last row served.
 * They carry no personal data and are bound to nothing secret, so tampering only moves the page
 * (a position outside the dates a transaction can have is refused).
 */
export function encodeCursor(position: HistoryPosition): string {
  return Buffer.from(`${position.transactionDate.getTime()}.${position.id}`).toString('base64url');
}

export function decodeCursor(cursor: string): HistoryPosition | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const dot = text.indexOf('.');
  const ms = text.slice(0, dot);
  const id = text.slice(dot + 1);
  if (dot < 1 || !/^-?\d{1,15}$/.test(ms) || !isCanonicalUuid(id)) return undefined;
  const time = Number(ms);
  if (time < INSTANT_MIN_MS || time > INSTANT_MAX_MS) return undefined;
  return { transactionDate: new Date(time), id };
}
