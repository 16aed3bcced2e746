import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USER_ID_LENGTH_MAX } from '../../src/domain/ids.js';
import { DESCRIPTION_LENGTH_MAX } from '../../src/modules/transactions/index.js';
import {
  METADATA_KEY_LENGTH_MAX,
  METADATA_KEYS_MAX,
  METADATA_VALUE_LENGTH_MAX,
} from '../../src/modules/transactions/transactions.limits.js';
import { CreateTransactionBody } from '../../src/modules/transactions/transactions.schemas.js';
import { bodyValidator } from '../../src/platform/validation.js';
import { fernetToken } from '../helpers/legacy-export.js';
import {
  DOCUMENT_BYTES_MAX,
  FernetKey,
  csvCell,
  decodeExportedDocument,
  decodeLegacyDocument,
  idForObjectId,
  readDocuments,
  type RawDocument,
} from '../../src/modules/legacy/index.js';

const fixtures = JSON.parse(
  readFileSync(new URL('../fixtures/legacy/fernet-tokens.json', import.meta.url), 'utf8'),
) as { key: string; wrong_key: string; known: { plaintext: string; token: string }[] };
const key = new FernetKey(fixtures.key);
const token = fixtures.known[0]!.token;
const OID = '65a1f0c2e4b0a1b2c3d4e5f6';

function doc(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    _id: { $oid: OID },
    user_id: 'user-1',
    full_name: token,
    transaction_date: '2024-01-15T10:30:00.123456',
    transaction_amount: 100.5,
    transaction_type: 'credit',
    ...overrides,
  });
}

function decode(overrides: Record<string, unknown> = {}, currency = 'GHS') {
  return decodeLegacyDocument(doc(overrides), key, currency);
}

function reason(overrides: Record<string, unknown>, currency = 'GHS'): string {
  const decoded = decode(overrides, currency);
  if (decoded.ok) throw new Error(`expected a rejection for ${JSON.stringify(overrides)}`);
  return decoded.reason;
}

/** A line of this service's own export (`export --format ndjson`), as the `import` command reads. */
const EXPORTED_LINE = {
  id: '0190f0c2-e4b0-7a1b-8c3d-4e5f60718293',
  legacy_id: null,
  user_id: 'user-1',
  full_name: 'Ama Owusu',
  transaction_date: '2024-01-15T10:30:00.123Z',
  transaction_amount: 0.3,
  transaction_type: 'debit',
  currency: 'GHS',
  description: null,
  metadata: null,
  created_at: '2024-01-15T10:31:00.000Z',
  updated_at: '2024-01-16T10:31:00.000Z',
  version: 1,
};

describe('an old document (mongoexport, Extended JSON v2)', () => {
  it('becomes a row: name decrypted, ObjectId kept, a stable UUIDv7 from its time', () => {
    const decoded = decode();
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.row).toMatchObject({
      legacyId: OID,
      userId: 'user-1',
      fullName: fixtures.known[0]!.plaintext,
      amountMinor: 10050n,
      transactionType: 'credit',
      currency: 'GHS',
      version: 1,
    });
    // Naive means UTC; microseconds beyond the millisecond are dropped (storage keeps ms).
    expect(decoded.row.transactionDate.toISOString()).toBe('2024-01-15T10:30:00.123Z');
    expect(decoded.row.createdAt.toISOString()).toBe(
      new Date(Number.parseInt(OID.slice(0, 8), 16) * 1000).toISOString(),
    );
    expect(decoded.row.id).toBe(idForObjectId(OID));
    expect(decoded.row.id).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(idForObjectId(OID.toUpperCase().toLowerCase())).toBe(decoded.row.id);
    expect(idForObjectId('65a1f0c2e4b0a1b2c3d4e5f7')).not.toBe(decoded.row.id);
  });

  it('reads every date form the old service wrote', () => {
    const cases: [unknown, string][] = [
      ['2024-01-15T10:30:00Z', '2024-01-15T10:30:00.000Z'],
      ['2024-01-15T10:30:00.5Z', '2024-01-15T10:30:00.500Z'],
      ['2024-01-15T10:30:00.123456Z', '2024-01-15T10:30:00.123Z'],
      ['2024-01-15T10:30:00+00:00', '2024-01-15T10:30:00.000Z'],
      ['2024-01-15T10:30:00.999999+02:00', '2024-01-15T08:30:00.999Z'],
      ['2024-01-15T00:30:00-05:30', '2024-01-15T06:00:00.000Z'],
      ['2024-01-15T10:30:00', '2024-01-15T10:30:00.000Z'],
      ['2024-01-15T10:30:00.000001', '2024-01-15T10:30:00.000Z'],
      [{ $date: '2024-01-15T10:30:00.123Z' }, '2024-01-15T10:30:00.123Z'],
      [{ $date: { $numberLong: '1705314600123' } }, '2024-01-15T10:30:00.123Z'],
    ];
    for (const [input, expected] of cases) {
      const decoded = decode({ transaction_date: input });
      expect(decoded.ok && decoded.row.transactionDate.toISOString(), String(input)).toBe(expected);
    }
    for (const bad of ['2024-02-30T10:00:00', '2024-01-15T25:00:00Z', 'yesterday', '', 17, null]) {
      expect(reason({ transaction_date: bad })).toMatch(/^transaction_date: /);
    }
    expect(reason({ transaction_date: undefined })).toBe('transaction_date: missing');
  });

  it("converts amounts exactly from the double's shortest decimal form, relaxed or canonical", () => {
    const minor = (amount: unknown, currency = 'GHS') => {
      const decoded = decode({ transaction_amount: amount }, currency);
      return decoded.ok ? decoded.row.amountMinor : decoded.reason;
    };
    expect(minor(100.5)).toBe(10050n);
    expect(minor(0.1)).toBe(10n);
    expect(minor(0.3)).toBe(30n);
    // 0.1 + 0.2 in Python is 0.30000000000000004: more decimals than GHS has, rejected not rounded.
    expect(minor(0.1 + 0.2)).toMatch(/more decimal places than GHS allows \(2\); not rounded/);
    expect(minor(19.99)).toBe(1999n);
    expect(minor(1e-7)).toMatch(/decimal places/);
    expect(minor(1500, 'JPY')).toBe(1500n);
    expect(minor(1500.5, 'JPY')).toMatch(/more decimal places than JPY allows \(0\)/);
    expect(minor(1.234, 'BHD')).toBe(1234n);
    expect(minor({ $numberDouble: '100.5' })).toBe(10050n);
    expect(minor({ $numberDouble: '1.0E2' })).toBe(10000n);
    expect(minor({ $numberInt: '42' })).toBe(4200n);
    expect(minor({ $numberLong: '7' })).toBe(700n);
    expect(minor({ $numberDecimal: '12.34' })).toBe(1234n);
    for (const bad of ['NaN', 'Infinity', '-Infinity']) {
      expect(minor({ $numberDouble: bad })).toMatch(/^transaction_amount: not a finite number/);
    }
    expect(minor(-5)).toBe('transaction_amount: must be greater than 0');
    expect(minor(0)).toBe('transaction_amount: must be greater than 0');
    expect(minor({ $numberDouble: '-0.0' })).toBe('transaction_amount: must be greater than 0');
    expect(minor({ $numberInt: '-3' })).toBe('transaction_amount: must be greater than 0');
    expect(minor('100')).toMatch(/^transaction_amount: not a number/);
    expect(minor(true)).toMatch(/^transaction_amount: not a number/);
    expect(minor(undefined)).toBe('transaction_amount: missing');
    expect(minor(1e21)).toMatch(/^transaction_amount: /);
  });

  it('rejects what the service would not store, saying why', () => {
    expect(reason({ user_id: undefined })).toBe('user_id: missing');
    expect(reason({ user_id: '' })).toBe('user_id: empty');
    expect(reason({ user_id: 12 })).toBe('user_id: not a string');
    expect(reason({ user_id: 'x'.repeat(129) })).toBe('user_id: 129 characters, at most 128');
    expect(reason({ user_id: 'a\u0000b' })).toBe('user_id: contains NUL (U+0000)');
    expect(reason({ user_id: 'a\u0085b' })).toBe('user_id: contains a control character (U+0085)');
    expect(reason({ transaction_type: 'refund' })).toMatch(
      /^transaction_type: must be credit or debit/,
    );
    expect(reason({ transaction_type: 'Credit' })).toMatch(/^transaction_type: /);
    expect(reason({ transaction_type: undefined })).toBe('transaction_type: missing');
    expect(reason({ _id: undefined })).toBe('_id: missing');
    expect(reason({ _id: { $oid: 'nope' } })).toBe('_id: not an ObjectId');
    expect(reason({ full_name: undefined })).toBe('full_name: missing');
    expect(reason({ full_name: 'plain text' })).toMatch(/^full_name: does not decrypt/);
    const wrong = new FernetKey(fixtures.wrong_key);
    const decoded = decodeLegacyDocument(doc(), wrong, 'GHS');
    expect(decoded).toMatchObject({ ok: false, legacyId: OID });
    expect(!decoded.ok && decoded.reason).toMatch(
      /does not decrypt under LEGACY_SECRET_KEY \(HMAC/,
    );
    const empty = fixtures.known.find((k) => k.plaintext === '')!.token;
    expect(reason({ full_name: empty })).toBe('full_name: empty');
    const newline = fixtures.known.find((k) => k.plaintext.includes('\n'))!.token;
    expect(reason({ full_name: newline })).toBe('full_name: contains a control character (U+000A)');
    expect(decodeLegacyDocument('{"_id": ', key, 'GHS')).toEqual({
      ok: false,
      legacyId: null,
      reason: 'malformed JSON',
    });
    expect(decodeLegacyDocument('[1,2]', key, 'GHS')).toMatchObject({
      reason: 'not a JSON object',
    });
  });

  it('accepts an ObjectId in capitals and keeps it in lower case', () => {
    const decoded = decode({ _id: { $oid: OID.toUpperCase() } });
    expect(decoded.ok && decoded.row.legacyId).toBe(OID);
  });
});

describe('text lengths, counted as the API counts them (code points)', () => {
  const createBody = bodyValidator(CreateTransactionBody);
  const apiAccepts = (fields: { user_id: string; description: string }) =>
    createBody({
      ...fields,
      full_name: 'Ama',
      transaction_date: '2024-01-15',
      transaction_amount: 1,
      transaction_type: 'credit',
    }).ok;
  // A 4-byte character: one code point, two UTF-16 units.
  const astral = '\u{1F600}';
  it('imports exactly the user ids and descriptions the API accepts, at the limits', () => {
    const cases = [
      { user_id: astral.repeat(USER_ID_LENGTH_MAX), description: 'rent', api: true },
      { user_id: astral.repeat(USER_ID_LENGTH_MAX + 1), description: 'rent', api: false },
      { user_id: 'x'.repeat(USER_ID_LENGTH_MAX + 1), description: 'rent', api: false },
      { user_id: 'user-1', description: astral.repeat(DESCRIPTION_LENGTH_MAX), api: true },
      { user_id: 'user-1', description: astral.repeat(DESCRIPTION_LENGTH_MAX + 1), api: false },
    ];
    for (const { user_id, description, api } of cases) {
      const what = `${user_id.length} + ${description.length} UTF-16 units`;
      expect(apiAccepts({ user_id, description }), what).toBe(api);
      // The old service's documents carry no description; this service's export does.
      const own = decodeExportedDocument(
        JSON.stringify({ ...EXPORTED_LINE, user_id, description }),
      );
      expect(own.ok, what).toBe(api);
      if (own.ok) expect(own.row).toMatchObject({ userId: user_id, description });
      if (description === 'rent') {
        const old = decode({ user_id });
        expect(old.ok, what).toBe(api);
        if (old.ok) expect(old.row.userId).toBe(user_id);
      }
    }
  });
});

describe("this service's own export", () => {
  const exported = { ...EXPORTED_LINE, description: 'rent', metadata: { a: 'b' }, version: 3 };

  it('reads back every field as it was', () => {
    const decoded = decodeExportedDocument(JSON.stringify(exported));
    expect(decoded).toEqual({
      ok: true,
      row: {
        id: exported.id,
        legacyId: null,
        userId: 'user-1',
        fullName: 'Ama Owusu',
        transactionDate: new Date(exported.transaction_date),
        amountMinor: 30n,
        transactionType: 'debit',
        currency: 'GHS',
        description: 'rent',
        metadata: { a: 'b' },
        version: 3,
        createdAt: new Date(exported.created_at),
        updatedAt: new Date(exported.updated_at),
      },
    });
  });

  it('refuses a line that is not one', () => {
    const bad = (overrides: Record<string, unknown>) => {
      const decoded = decodeExportedDocument(JSON.stringify({ ...exported, ...overrides }));
      return decoded.ok ? 'ok' : decoded.reason;
    };
    expect(bad({ id: 'x' })).toBe('id: not a UUID');
    expect(bad({ currency: 'XYZ' })).toMatch(/^currency: /);
    expect(bad({ version: 0 })).toMatch(/^version: /);
    expect(bad({ legacy_id: 'zz' })).toMatch(/^legacy_id: /);
    expect(bad({ metadata: { a: 1 } })).toMatch(/^metadata: /);
  });
});

/** The fields a POST needs, with `fields` over them: what the API's create schema says of it. */
const createBody = bodyValidator(CreateTransactionBody);
const apiAccepts = (fields: Record<string, unknown>) =>
  createBody({
    user_id: 'user-1',
    full_name: 'Ama',
    transaction_amount: 1,
    transaction_type: 'credit',
    ...fields,
  }).ok;

/** A line of this service's export with `fields` over it, as the `import` command decodes it. */
function importExported(fields: Record<string, unknown>) {
  return decodeExportedDocument(JSON.stringify({ ...EXPORTED_LINE, ...fields }));
}

describe('metadata, refused exactly where the API refuses it', () => {
  // A 4-byte character: one code point (what the schema counts), two UTF-16 units.
  const emoji = '\u{1F600}';
  const keys = (n: number) =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => [`key-${i}`, `value ${i}`]));

  const refused: [string, Record<string, string>, string][] = [
    [
      'too many keys',
      keys(METADATA_KEYS_MAX + 1),
      `metadata: ${METADATA_KEYS_MAX + 1} keys, at most ${METADATA_KEYS_MAX}`,
    ],
    ['an empty key', { '': 'v' }, 'metadata: key "": empty'],
    [
      'a key of 65 code points',
      { [emoji.repeat(METADATA_KEY_LENGTH_MAX + 1)]: 'v' },
      `metadata: key "${emoji.repeat(24)}…": ${METADATA_KEY_LENGTH_MAX + 1} characters, at most ${METADATA_KEY_LENGTH_MAX}`,
    ],
    [
      'a control character in a key',
      { 'a\u0001b': 'v' },
      'metadata: key "a\\u0001b": contains a control character (U+0001)',
    ],
    [
      'a value of 501 code points',
      { note: emoji.repeat(METADATA_VALUE_LENGTH_MAX + 1) },
      `metadata: value of "note": ${METADATA_VALUE_LENGTH_MAX + 1} characters, at most ${METADATA_VALUE_LENGTH_MAX}`,
    ],
    ['NUL in a value', { note: 'a\u0000b' }, 'metadata: value of "note": contains NUL (U+0000)'],
    [
      'NUL in the value of a key holding U+2028',
      { 'a\u2028b': '\u0000' },
      'metadata: value of "a\u2028b": contains NUL (U+0000)',
    ],
  ];

  it.each(refused)('refuses %s, as the API does', (_, metadata, reason) => {
    expect(apiAccepts({ metadata })).toBe(false);
    expect(importExported({ metadata })).toEqual({ ok: false, legacyId: null, reason });
  });

  const atTheLimits: [string, Record<string, string>][] = [
    ['20 keys', keys(METADATA_KEYS_MAX)],
    ['a key of 64 emoji (128 UTF-16 units)', { [emoji.repeat(METADATA_KEY_LENGTH_MAX)]: 'v' }],
    [
      'a value of 500 code points (1,000 UTF-16 units)',
      { note: emoji.repeat(METADATA_VALUE_LENGTH_MAX) },
    ],
    ['a key of one character, a control character in a value', { k: 'line\none\ttab' }],
  ];

  it.each(atTheLimits)('imports %s, as the API accepts it', (_, metadata) => {
    expect(apiAccepts({ metadata })).toBe(true);
    const decoded = importExported({ metadata });
    expect(decoded.ok ? decoded.row.metadata : decoded.reason).toEqual(metadata);
  });
});

describe('the other fields a client writes, refused exactly where the API refuses them', () => {
  it("makes tokens the decoder reads (the tests' helper)", () => {
    expect(key.decryptText(fernetToken('Ama Owusu'))).toBe('Ama Owusu');
  });

  it('refuses a name the API refuses as sent, though trimming would have hidden the fault', () => {
    const cases: [string, string][] = [
      ['Ama Owusu\n', 'full_name: contains a control character (U+000A)'],
      ['\tAma Owusu', 'full_name: contains a control character (U+0009)'],
      [`${' '.repeat(998)}Ama`, 'full_name: 1001 characters, at most 1000'],
    ];
    for (const [name, why] of cases) {
      expect(apiAccepts({ full_name: name }), JSON.stringify(name)).toBe(false);
      expect(importExported({ full_name: name })).toMatchObject({ ok: false, reason: why });
      expect(reason({ full_name: fernetToken(name) })).toBe(why);
    }
    // Spaces around a name are trimmed, by the API and the import alike.
    expect(apiAccepts({ full_name: '  Ama  ' })).toBe(true);
    const padded = decode({ full_name: fernetToken('  Ama  ') });
    expect(padded.ok && padded.row.fullName).toBe('Ama');
  });

  it('refuses a transaction date more than 24 hours ahead of the import, as the API does', () => {
    const now = new Date('2025-06-01T12:00:00.000Z');
    const limit = '2025-06-02T12:00:00.000Z';
    const beyond = '2025-06-02T12:00:00.001Z';
    const old = decodeLegacyDocument(doc({ transaction_date: limit }), key, 'GHS', now);
    expect(old.ok && old.row.transactionDate.toISOString()).toBe(limit);
    for (const date of [beyond, { $date: beyond }]) {
      expect(decodeLegacyDocument(doc({ transaction_date: date }), key, 'GHS', now)).toMatchObject({
        ok: false,
        reason: `transaction_date: more than 24 hours in the future (${beyond})`,
      });
    }
  });

  it("restores its own export's dates however far ahead, whatever the clock", () => {
    // Rows the service holds may lie years ahead (the old service took any date): they come back.
    for (const date of ['2031-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) {
      const restored = importExported({ transaction_date: date });
      expect(restored.ok && restored.row.transactionDate.toISOString()).toBe(date);
    }
    expect(importExported({ transaction_date: '2025-02-30T00:00:00Z' })).toMatchObject({
      ok: false,
      reason: 'transaction_date: not a valid date ("2025-02-30T00:00:00Z")',
    });
  });

  it('refuses an amount in a longer decimal string than the API reads', () => {
    const long = `12.${'0'.repeat(38)}`;
    expect(apiAccepts({ transaction_amount: long })).toBe(false);
    expect(apiAccepts({ transaction_amount: long.slice(0, -1) })).toBe(true);
    expect(reason({ transaction_amount: { $numberDecimal: long } })).toBe(
      'transaction_amount: 41 characters, at most 40',
    );
    const fits = decode({ transaction_amount: { $numberDecimal: long.slice(0, -1) } });
    expect(fits.ok && fits.row.amountMinor).toBe(1200n);
  });

  it('reads a currency in lower case as the API does: upper-cased', () => {
    expect(apiAccepts({ currency: 'jpy' })).toBe(true);
    const decoded = importExported({ currency: 'jpy', transaction_amount: 1500 });
    expect(decoded.ok && decoded.row).toMatchObject({ currency: 'JPY', amountMinor: 1500n });
    expect(importExported({ currency: 'JP' })).toMatchObject({ ok: false });
    expect(importExported({ currency: 'XYZ' })).toMatchObject({
      ok: false,
      reason: 'currency: unknown (XYZ)',
    });
  });
});

describe('reading documents from a file in bounded memory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fido-reader-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function read(content: string | Buffer): Promise<RawDocument[]> {
    const file = path.join(dir, `f-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, content);
    const out: RawDocument[] = [];
    for await (const document of readDocuments(file)) out.push(document);
    return out;
  }

  it('reads JSON lines, skipping blank lines but counting them', async () => {
    const docs = await read('{"a":1}\r\n\n{"b":"x\\ny"}\n{"c":[1,2]}');
    expect(docs).toEqual([
      { ordinal: 1, line: 1, text: '{"a":1}\r' },
      { ordinal: 2, line: 3, text: '{"b":"x\\ny"}' },
      { ordinal: 3, line: 4, text: '{"c":[1,2]}' },
    ]);
  });

  it('reads a --jsonArray file, on one line or pretty-printed, with brackets and commas in strings', async () => {
    const elements = [{ a: 'x,]}' }, { b: { c: [1, { d: '"[' }] } }, { e: 'é\\' }];
    for (const text of [
      JSON.stringify(elements),
      `\ufeff[\n${elements.map((e) => JSON.stringify(e, null, 2)).join(',\n')}\n]\n`,
    ]) {
      const docs = await read(text);
      expect(docs.map((d) => ('text' in d ? JSON.parse(d.text) : d.error))).toEqual(elements);
      expect(docs.map((d) => d.ordinal)).toEqual([1, 2, 3]);
    }
    const pretty = await read(
      `[\n${elements.map((e) => JSON.stringify(e, null, 2)).join(',\n')}\n]`,
    );
    expect(pretty.map((d) => d.line)).toEqual([2, 5, 15]);
    expect(await read('[]')).toEqual([]);
    expect(await read('[{"a":1},')).toEqual([
      { ordinal: 1, line: 1, text: '{"a":1}' },
      { ordinal: 2, line: 1, error: 'the file ends before the array closes' },
    ]);
  });

  it('splits documents across read chunks', async () => {
    const many = Array.from({ length: 3000 }, (_, i) => ({ i, pad: 'p'.repeat(i % 300) }));
    const asLines = await read(many.map((m) => JSON.stringify(m)).join('\n'));
    expect(asLines.map((d) => ('text' in d ? JSON.parse(d.text).i : -1))).toEqual(
      many.map((m) => m.i),
    );
    const asArray = await read(JSON.stringify(many));
    expect(asArray.map((d) => ('text' in d ? JSON.parse(d.text).i : -1))).toEqual(
      many.map((m) => m.i),
    );
  });

  it('rejects a document larger than the bound without buffering it, and goes on', async () => {
    const huge = `{"x":"${'y'.repeat(DOCUMENT_BYTES_MAX + 10)}"}`;
    const lines = await read(`{"a":1}\n${huge}\n{"b":2}\n`);
    expect(lines).toEqual([
      { ordinal: 1, line: 1, text: '{"a":1}' },
      { ordinal: 2, line: 2, error: `document larger than ${DOCUMENT_BYTES_MAX} bytes` },
      { ordinal: 3, line: 3, text: '{"b":2}' },
    ]);
    const array = await read(`[{"a":1},${huge},{"b":2}]`);
    expect(array.map((d) => ('text' in d ? d.text : d.error))).toEqual([
      '{"a":1}',
      `document larger than ${DOCUMENT_BYTES_MAX} bytes`,
      '{"b":2}',
    ]);
  });
});

describe('CSV cells', () => {
  it('quote separators, quotes and line breaks, and defuse formulas in user text', () => {
    expect(csvCell('plain', true)).toBe('plain');
    expect(csvCell('a,b', true)).toBe('"a,b"');
    expect(csvCell('say "hi"', true)).toBe('"say ""hi"""');
    expect(csvCell('two\nlines', true)).toBe('"two\nlines"');
    expect(csvCell('=HYPERLINK("http://x")', true)).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvCell('+1', true)).toBe("'+1");
    expect(csvCell('-1', true)).toBe("'-1");
    expect(csvCell('@SUM(A1)', true)).toBe("'@SUM(A1)");
    expect(csvCell('\tx', true)).toBe("'\tx");
    // Numbers and dates are ours, never a user's formula.
    expect(csvCell('100.5', false)).toBe('100.5');
  });
});
