import { INSTANT_MAX_MS, INSTANT_MIN_MS } from './dates.js';
import { isCanonicalUuid } from './ids.js';

/*
 * Keyset cursors: the position of the last row a page served, handed to the client and back.
 * One codec for every list; each list names its position's fields. Clients hold cursors (and the
 * outbox relay keeps a feed cursor in job_state), so a format, once issued, is never changed:
 *
 *   transaction history   base64url("<epoch ms>.<id>")           fields instant, uuid
 *   event feed            base64url("<tx id>.<sequence>")        fields int64, int64
 *   webhook deliveries    "<position>"                           field int64, armour none
 *   API keys              "<key id>"                             field text, armour none
 *   JetStream position    "<tx id>.<sequence>"                   fields int64, int64, armour none
 *
 * The first two unarmoured formats are older single-field cursors whose pattern the OpenAPI
 * document publishes; the JetStream position is no cursor a client holds but the relay's place in
 * job_state, kept in the text it was always stored as. A new list uses base64url. Cursors carry
 * no personal data and are bound to nothing secret: tampering only moves the page, and a field
 * outside what its column can hold is refused here (a 422) rather than in SQL (a 500).
 */

/** One field of a position: how it is written into a cursor, and read back (undefined: invalid). */
export interface CursorField<T> {
  encode: (value: T) => string;
  decode: (text: string) => T | undefined;
}

export interface CursorCodec<P> {
  encode: (position: P) => string;
  /** The position a cursor holds, or undefined when it is not one this codec issues. */
  decode: (cursor: string) => P | undefined;
}

const INT64_LIMIT = 2n ** 63n;
/** A non-negative integer as String(bigint) writes it: 0, or up to 19 digits without a leading 0. */
export const INT64_DIGITS_PATTERN = '^(0|[1-9][0-9]{0,18})$';
const INT64_DIGITS = new RegExp(INT64_DIGITS_PATTERN);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const FIELD_SEPARATOR = '.';

/** The kinds of field a position has. */
export const cursorFields = {
  /** An instant as epoch milliseconds, within the dates a row can hold. */
  instant: {
    encode: (value) => String(value.getTime()),
    decode: (text) => {
      if (!/^-?\d{1,15}$/.test(text)) return undefined;
      const ms = Number(text);
      return ms < INSTANT_MIN_MS || ms > INSTANT_MAX_MS ? undefined : new Date(ms);
    },
  } satisfies CursorField<Date>,
  /** A record id as the service writes it (a lower-case UUID). */
  uuid: {
    encode: (value) => value,
    decode: (text) => (isCanonicalUuid(text) ? text : undefined),
  } satisfies CursorField<string>,
  /**
   * A PostgreSQL bigint, as its decimal digits (the text drivers hand a bigint over as). Only the
   * spelling we write is read: no sign, no leading zero, so each position has one cursor.
   */
  int64: {
    encode: (value) => value,
    decode: (text) => (INT64_DIGITS.test(text) && BigInt(text) < INT64_LIMIT ? text : undefined),
  } satisfies CursorField<string>,
  /** Text taken as it is: its route's schema has already bounded it. */
  text: {
    encode: (value) => value,
    decode: (text) => text,
  } satisfies CursorField<string>,
};

/**
 * A codec for positions with the given fields, written in the order given and joined by '.'
 * (the last field takes the rest of the text), then armoured in base64url so clients treat the
 * cursor as opaque; `armour: 'none'` only for the older unarmoured formats above.
 */
export function cursorCodec<P extends object>(
  fields: { readonly [K in keyof P]: CursorField<P[K]> },
  options: { armour: 'base64url' | 'none' } = { armour: 'base64url' },
): CursorCodec<P> {
  const names = Object.keys(fields) as (keyof P & string)[];
  const armoured = options.armour === 'base64url';
  const encode = (position: P) => {
    const text = names.map((name) => fields[name].encode(position[name])).join(FIELD_SEPARATOR);
    return armoured ? Buffer.from(text).toString('base64url') : text;
  };
  return {
    encode,
    decode: (cursor) => {
      if (armoured && !BASE64URL.test(cursor)) return undefined;
      let text = armoured ? Buffer.from(cursor, 'base64url').toString('utf8') : cursor;
      const position: Partial<P> = {};
      for (const [index, name] of names.entries()) {
        const last = index === names.length - 1;
        const end = last ? text.length : text.indexOf(FIELD_SEPARATOR);
        if (end < 0) return undefined;
        const value = fields[name].decode(text.slice(0, end));
        if (value === undefined) return undefined;
        position[name] = value;
        text = text.slice(end + FIELD_SEPARATOR.length);
      }
      // Only the cursor this codec would write for the position: one cursor per position, so
      // no other spelling (a leading zero, base64url's spare trailing bits) is ever accepted.
      return encode(position as P) === cursor ? (position as P) : undefined;
    },
  };
}
