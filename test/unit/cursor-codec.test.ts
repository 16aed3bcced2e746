import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cursorCodec, cursorFields } from '../../src/domain/cursor.js';
import { keysetPage } from '../../src/domain/pagination.js';
import { INSTANT_MAX_MS, INSTANT_MIN_MS } from '../../src/domain/dates.js';
import { isCanonicalUuid } from '../../src/domain/ids.js';
import { decodeJetStreamPosition, encodeJetStreamPosition } from '../../src/modules/events/feed.js';

/*
 * One codec serves every keyset list, and clients hold cursors issued before it (the outbox relay
 * keeps one in job_state): each list's codec must read and write exactly what its own code did.
 * The functions below are those earlier implementations, kept here as the reference.
 */

const reference = {
  history: {
    encode: (p: { transactionDate: Date; id: string }) =>
      Buffer.from(`${p.transactionDate.getTime()}.${p.id}`).toString('base64url'),
    decode(cursor: string) {
      if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
      const text = Buffer.from(cursor, 'base64url').toString('utf8');
      const dot = text.indexOf('.');
      const ms = text.slice(0, dot);
      const id = text.slice(dot + 1);
      if (dot < 1 || !/^-?\d{1,15}$/.test(ms) || !isCanonicalUuid(id)) return undefined;
      const time = Number(ms);
      if (time < INSTANT_MIN_MS || time > INSTANT_MAX_MS) return undefined;
      return { transactionDate: new Date(time), id };
    },
  },
  feed: {
    encode: (p: { txId: string; sequence: string }) =>
      Buffer.from(`${p.txId}.${p.sequence}`).toString('base64url'),
    decode(cursor: string) {
      if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
      const [txId, sequence, ...rest] = Buffer.from(cursor, 'base64url')
        .toString('utf8')
        .split('.');
      const digits = /^\d{1,20}$/;
      if (rest.length > 0 || !txId || !sequence || !digits.test(txId) || !digits.test(sequence)) {
        return undefined;
      }
      if (BigInt(txId) >= 2n ** 63n || BigInt(sequence) >= 2n ** 63n) return undefined;
      return { txId, sequence };
    },
  },
  // The JetStream relay's saved position, as jetstream.repository.ts wrote and read it by hand.
  jetStream: {
    encode: (p: { txId: string; sequence: string }) => `${p.txId}.${p.sequence}`,
    decode(value: string) {
      const [txId, sequence] = value.split('.');
      return txId && sequence ? { txId, sequence } : undefined;
    },
  },
  // Deliveries: the schema admits ^[0-9]{1,19}$ only, then the service bounded the value.
  deliveries: {
    encode: (p: { position: string }) => p.position,
    decode: (cursor: string) =>
      /^\d{1,19}$/.test(cursor) && BigInt(cursor) <= 2n ** 63n - 1n
        ? { position: cursor }
        : undefined,
  },
};

const history = cursorCodec<{ transactionDate: Date; id: string }>({
  transactionDate: cursorFields.instant,
  id: cursorFields.uuid,
});
const feed = cursorCodec<{ txId: string; sequence: string }>({
  txId: cursorFields.int64,
  sequence: cursorFields.int64,
});
const deliveries = cursorCodec<{ position: string }>(
  { position: cursorFields.int64 },
  { armour: 'none' },
);
const apiKeys = cursorCodec<{ id: string }>({ id: cursorFields.text }, { armour: 'none' });

const int64 = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String);

/** Digits as String(bigint) writes them, the only spelling the API issues: no leading zero. */
const asWritten = (digits: string) => String(BigInt(digits)) === digits;
const zeroPadded = fc
  .tuple(fc.bigInt({ min: 0n, max: 2n ** 63n }), fc.nat(2))
  .map(([n, zeros]) => `${'0'.repeat(zeros)}${n}`);
/** Text near the formats: digits, dots, signs, hex, base64url, and anything at all. */
const cursorish = fc.oneof(
  fc.string(),
  fc.string({ unit: fc.constantFrom(...'0123456789.-abcdef') }),
  fc
    .string({ unit: fc.constantFrom(...'0123456789.-abcdef') })
    .map((text) => Buffer.from(text).toString('base64url')),
  fc
    .tuple(fc.integer({ min: -1e15, max: 1e15 }), fc.uuid(), fc.constantFrom('.', '..', ''))
    .map(([ms, id, dot]) => Buffer.from(`${ms}${dot}${id}`).toString('base64url')),
  fc
    .tuple(fc.bigInt({ min: 0n, max: 2n ** 64n }), fc.bigInt({ min: 0n, max: 2n ** 64n }))
    .map(([a, b]) => Buffer.from(`${a}.${b}`).toString('base64url')),
  // Positions spelled with leading zeros, bare and armoured.
  fc
    .tuple(zeroPadded, zeroPadded, fc.boolean())
    .map(([a, b, bare]) => (bare ? a : Buffer.from(`${a}.${b}`).toString('base64url'))),
);

describe('the cursor codec', () => {
  it('writes history and feed cursors exactly as before', () => {
    fc.assert(
      fc.property(
        fc.date({ noInvalidDate: true, min: new Date('1900-01-01'), max: new Date('9999-12-31') }),
        fc.uuid(),
        int64,
        int64,
        (transactionDate, id, txId, sequence) => {
          const position = { transactionDate, id };
          expect(history.encode(position)).toBe(reference.history.encode(position));
          expect(feed.encode({ txId, sequence })).toBe(reference.feed.encode({ txId, sequence }));
          expect(deliveries.encode({ position: txId })).toBe(txId);
        },
      ),
    );
    // Cursors as the earlier code issued them, literally.
    expect(
      history.decode('MTcwMDAwMDAwMDAwMC4wMTkzYTNjNC0xZjJlLTdkM2MtOGI0YS01ZjZlN2Q4YzliMGE'),
    ).toEqual({
      transactionDate: new Date(1_700_000_000_000),
      id: '0193a3c4-1f2e-7d3c-8b4a-5f6e7d8c9b0a',
    });
    expect(feed.decode('MTIzNC41Njc4')).toEqual({ txId: '1234', sequence: '5678' });
  });

  it("writes the JetStream relay's saved position as before, and reads every one it saved", () => {
    fc.assert(
      fc.property(int64, int64, (txId, sequence) => {
        const position = { txId, sequence };
        const saved = reference.jetStream.encode(position);
        expect(encodeJetStreamPosition(position)).toBe(saved);
        expect(decodeJetStreamPosition(saved)).toEqual(reference.jetStream.decode(saved));
        expect(decodeJetStreamPosition(saved)).toEqual(position);
      }),
    );
    // A position as the earlier code stored it, literally (the text of two PostgreSQL bigints).
    expect(decodeJetStreamPosition('1234.5678')).toEqual({ txId: '1234', sequence: '5678' });
    expect(decodeJetStreamPosition('9223372036854775807.1')).toEqual({
      txId: '9223372036854775807',
      sequence: '1',
    });
    // What it never wrote is refused now, where it used to come back as a position SQL refused.
    expect(decodeJetStreamPosition('abc.def')).toBeUndefined();
    expect(decodeJetStreamPosition('')).toBeUndefined();
  });

  it('reads what the earlier code read in the spelling it wrote, and refuses what it refused', () => {
    fc.assert(
      fc.property(cursorish, (cursor) => {
        // The earlier code also read spellings it never wrote (digits with leading zeros,
        // base64url's spare trailing bits set): only the one it wrote is read now.
        const historyPosition = reference.history.decode(cursor);
        expect(history.decode(cursor)).toEqual(
          historyPosition && reference.history.encode(historyPosition) === cursor
            ? historyPosition
            : undefined,
        );
        const feedPosition = reference.feed.decode(cursor);
        expect(feed.decode(cursor)).toEqual(
          feedPosition &&
            reference.feed.encode(feedPosition) === cursor &&
            asWritten(feedPosition.txId) &&
            asWritten(feedPosition.sequence)
            ? feedPosition
            : undefined,
        );
        if (/^[0-9]{1,19}$/.test(cursor)) {
          const position = reference.deliveries.decode(cursor);
          expect(deliveries.decode(cursor)).toEqual(
            position && asWritten(position.position) ? position : undefined,
          );
        }
        // An API-key cursor is a key id, taken as it is.
        expect(apiKeys.decode(cursor)).toEqual({ id: cursor });
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('int64 cursors (the event feed, webhook deliveries)', () => {
  const padded = fc.tuple(int64, fc.integer({ min: 1, max: 20 })).map(([n, zeros]) => ({
    n,
    zeros: '0'.repeat(zeros),
  }));

  it('read back every cursor they issue', () => {
    fc.assert(
      fc.property(int64, int64, (txId, sequence) => {
        for (const position of [
          { txId, sequence },
          { txId: '0', sequence: '0' },
        ]) {
          expect(feed.decode(feed.encode(position))).toEqual(position);
        }
        expect(deliveries.decode(deliveries.encode({ position: txId }))).toEqual({
          position: txId,
        });
      }),
      { numRuns: 2_000 },
    );
  });

  it('refuse a position spelled with leading zeros: one cursor per position', () => {
    fc.assert(
      fc.property(padded, int64, ({ n, zeros }, other) => {
        expect(deliveries.decode(`${zeros}${n}`)).toBeUndefined();
        for (const text of [`${zeros}${n}.${other}`, `${other}.${zeros}${n}`]) {
          expect(feed.decode(Buffer.from(text).toString('base64url')), text).toBeUndefined();
        }
      }),
      { numRuns: 2_000 },
    );
    expect(deliveries.decode('00000000000000000042')).toBeUndefined();
    expect(deliveries.decode('42')).toEqual({ position: '42' });
  });
});

describe('armoured cursors (history, the event feed)', () => {
  const position = {
    transactionDate: new Date(1_700_000_000_123),
    id: '0190a4b2-1c3d-7e4f-8a9b-0c1d2e3f4a5b',
  };

  it('refuse every spelling but the one they issue: one cursor per position', () => {
    const cursor = history.encode(position);
    expect(history.decode(cursor)).toEqual(position);
    // base64url of 50 bytes ends in a character holding 2 spare bits: any other value of them
    // decodes to the same bytes.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(cursor.at(-1)!);
    const spare = alphabet[last ^ 1]!;
    const respelled = `${cursor.slice(0, -1)}${spare}`;
    expect(Buffer.from(respelled, 'base64url')).toEqual(Buffer.from(cursor, 'base64url'));
    expect(history.decode(respelled)).toBeUndefined();
    // The instant with a leading zero, or as -0.
    for (const text of [
      `0${position.transactionDate.getTime()}.${position.id}`,
      `-0.${position.id}`,
    ]) {
      expect(history.decode(Buffer.from(text).toString('base64url')), text).toBeUndefined();
    }
    expect(history.decode(Buffer.from(`0.${position.id}`).toString('base64url'))).toEqual({
      transactionDate: new Date(0),
      id: position.id,
    });
  });
});

describe('keysetPage', () => {
  const cursorOf = (row: number) => `c${row}`;

  it('gives a next cursor only when a row beyond the page was read', () => {
    expect(keysetPage([1, 2, 3], 2, cursorOf)).toEqual({
      items: [1, 2],
      pagination: { limit: 2, next_cursor: 'c2', has_more: true },
    });
    expect(keysetPage([1, 2], 2, cursorOf)).toEqual({
      items: [1, 2],
      pagination: { limit: 2, next_cursor: null, has_more: false },
    });
    expect(keysetPage([], 2, cursorOf).pagination.next_cursor).toBeNull();
  });

  it('always gives a feed a place to poll from', () => {
    expect(keysetPage([1, 2], 2, cursorOf, { after: 'c0' }).pagination).toEqual({
      limit: 2,
      next_cursor: 'c2',
      has_more: false,
    });
    expect(keysetPage([], 2, cursorOf, { after: 'c0' }).pagination.next_cursor).toBe('c0');
    expect(keysetPage([], 2, cursorOf, { after: undefined }).pagination.next_cursor).toBeNull();
  });
});
