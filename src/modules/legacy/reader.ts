/**
 * Reads JSON documents out of a file of any size in bounded memory: JSON lines (mongoexport's
 * default, and this service's NDJSON export) or one JSON array (`mongoexport --jsonArray`, on one
 * line or pretty-printed). The format is told by the first character that is not white space.
 */
import { createReadStream } from 'node:fs';

/** Larger than any document the old service could store (MongoDB's own limit is 16 MiB per
 * document, a transaction is a few hundred bytes): a longer one is rejected, not buffered. */
export const DOCUMENT_BYTES_MAX = 1024 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;

export type RawDocument =
  | { ordinal: number; line: number; text: string }
  | { ordinal: number; line: number; error: string };

export interface ReadProgress {
  /** Bytes of the file consumed so far. */
  bytesRead: number;
}

const NEWLINE = 0x0a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** Collects one document's bytes, up to DOCUMENT_BYTES_MAX; past that it only counts. */
class Piece {
  parts: Buffer[] = [];
  bytes = 0;

  add(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.bytes += end - start;
    if (this.bytes <= DOCUMENT_BYTES_MAX) this.parts.push(chunk.subarray(start, end));
  }

  take(): { text: string } | { error: string } {
    const tooLarge = this.bytes > DOCUMENT_BYTES_MAX;
    const text = tooLarge ? '' : Buffer.concat(this.parts).toString('utf8');
    this.parts = [];
    this.bytes = 0;
    return tooLarge ? { error: `document larger than ${DOCUMENT_BYTES_MAX} bytes` } : { text };
  }
}

/**
 * The documents of `file`, in order, each with its ordinal (1-based) and the line it starts on.
 * A document that cannot be delimited (too large, or an array cut short) comes as an `error`;
 * whether its JSON parses is the caller's to find out.
 */
export async function* readDocuments(
  file: string,
  progress: ReadProgress = { bytesRead: 0 },
): AsyncGenerator<RawDocument> {
  let mode: 'unknown' | 'lines' | 'array' | 'done' = 'unknown';
  let line = 1;
  let ordinal = 0;
  const piece = new Piece();
  let pieceLine = 1;
  // Array mode: nesting depth inside the current element, and string state.
  let depth = 0;
  let inString = false;
  let escaped = false;
  let elementStarted = false;
  let bom = true;

  for await (const chunk of createReadStream(file, {
    highWaterMark: READ_CHUNK_BYTES,
  }) as AsyncIterable<Buffer>) {
    progress.bytesRead += chunk.length;
    let i = 0;
    if (bom && chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf)
      i = 3;
    bom = false;
    if (mode === 'unknown') {
      while (i < chunk.length && isSpace(chunk[i]!)) {
        if (chunk[i] === NEWLINE) line += 1;
        i += 1;
      }
      if (i === chunk.length) continue;
      if (chunk[i] === OPEN_BRACKET) {
        mode = 'array';
        i += 1;
      } else {
        mode = 'lines';
      }
      pieceLine = line;
    }

    if (mode === 'lines') {
      let start = i;
      for (;;) {
        const end = chunk.indexOf(NEWLINE, start);
        if (end < 0) {
          piece.add(chunk, start, chunk.length);
          break;
        }
        piece.add(chunk, start, end);
        const taken = piece.take();
        if (!('text' in taken) || taken.text.trim() !== '') {
          ordinal += 1;
          yield { ordinal, line, ...taken };
        }
        line += 1;
        start = end + 1;
      }
      continue;
    }

    if (mode === 'done') {
      for (; i < chunk.length; i += 1) {
        if (!isSpace(chunk[i]!)) {
          ordinal += 1;
          yield { ordinal, line, error: 'content after the closing ] of the array' };
          return;
        }
        if (chunk[i] === NEWLINE) line += 1;
      }
      continue;
    }

    // Array mode: split top-level elements at depth 0 commas, tracking strings and nesting.
    let start = elementStarted ? i : -1;
    for (; i < chunk.length; i += 1) {
      const byte = chunk[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (byte === BACKSLASH) escaped = true;
        else if (byte === QUOTE) inString = false;
        else if (byte === NEWLINE) line += 1;
        continue;
      }
      if (!elementStarted) {
        if (isSpace(byte)) {
          if (byte === NEWLINE) line += 1;
          continue;
        }
        if (byte === CLOSE_BRACKET && depth === 0) {
          mode = 'done';
          i += 1;
          break;
        }
        if (byte === COMMA) continue;
        elementStarted = true;
        pieceLine = line;
        start = i;
      }
      if (byte === QUOTE) inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) depth += 1;
      else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && depth > 0) depth -= 1;
      else if (byte === NEWLINE) line += 1;
      else if (depth === 0 && (byte === COMMA || byte === CLOSE_BRACKET)) {
        piece.add(chunk, start, i);
        ordinal += 1;
        yield { ordinal, line: pieceLine, ...piece.take() };
        elementStarted = false;
        start = -1;
        if (byte === CLOSE_BRACKET) {
          mode = 'done';
          i += 1;
          break;
        }
      }
    }
    if (elementStarted && start >= 0) piece.add(chunk, start, Math.min(i, chunk.length));
    if (mode === 'done') {
      for (; i < chunk.length; i += 1) {
        if (!isSpace(chunk[i]!)) {
          ordinal += 1;
          yield { ordinal, line, error: 'content after the closing ] of the array' };
          return;
        }
        if (chunk[i] === NEWLINE) line += 1;
      }
    }
  }

  if (mode === 'lines') {
    const taken = piece.take();
    if (!('text' in taken) || taken.text.trim() !== '') {
      ordinal += 1;
      yield { ordinal, line, ...taken };
    }
  } else if (mode === 'array') {
    // The file ended inside the array: its last element is cut short.
    ordinal += 1;
    yield { ordinal, line: pieceLine, error: 'the file ends before the array closes' };
  }
}
