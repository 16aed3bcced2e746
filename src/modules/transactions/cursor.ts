import { cursorCodec, cursorFields } from '../../domain/cursor.js';
import type { HistoryPosition } from './transactions.repository.js';

/**
 * History cursors: base64url of "<epoch ms>.<id>" of the last row served (src/domain/cursor.ts).
 * A position outside the dates a transaction can have is refused.
 */
const historyCursor = cursorCodec<HistoryPosition>({
  transactionDate: cursorFields.instant,
  id: cursorFields.uuid,
});

export function encodeCursor(position: HistoryPosition): string {
  return historyCursor.encode(position);
}

export function decodeCursor(cursor: string): HistoryPosition | undefined {
  return historyCursor.decode(cursor);
}
