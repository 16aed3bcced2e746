/**
 * A mongoexport of the old service's `transactions` collection, as an operator would hand it
 * over: real Fernet tokens made by Python's `cryptography` (test/fixtures/legacy), every date
 * form and amount encoding the old service and mongoexport produce, and, when asked, every kind of
 * broken document mixed in. Returns what a correct import must store.
 */
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RawRow } from './analytics-model.js';

export interface FernetFixtures {
  key: string;
  wrong_key: string;
  known: { plaintext: string; token: string }[];
  pool: { plaintext: string; token: string }[];
  wrong_key_pool: { plaintext: string; token: string }[];
}

export const fernetFixtures = JSON.parse(
  readFileSync(new URL('../fixtures/legacy/fernet-tokens.json', import.meta.url), 'utf8'),
) as FernetFixtures;

/**
 * A Fernet token of `plaintext` under the fixtures' key, made here for a name the Python-made
 * fixtures lack: the format (0x80, timestamp, IV, AES-128-CBC, HMAC-SHA256) is what
 * `cryptography` writes, and a test checks the decoder reads it.
 */
export function fernetToken(plaintext: string, key = fernetFixtures.key): string {
  const keyBytes = Buffer.from(key, 'base64url');
  const header = Buffer.alloc(9);
  header[0] = 0x80;
  header.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000)), 1);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-128-cbc', keyBytes.subarray(16), iv);
  const signed = Buffer.concat([header, iv, cipher.update(plaintext, 'utf8'), cipher.final()]);
  const mac = createHmac('sha256', keyBytes.subarray(0, 16)).update(signed).digest();
  return Buffer.concat([signed, mac]).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

export interface ExpectedImport extends RawRow {
  legacyId: string;
  fullName: string;
}

export interface BrokenDocument {
  /** 1-based line (and document ordinal) in the JSON-lines file. */
  line: number;
  legacyId: string | null;
  kind: string;
  /** What the report's reason must match. */
  reason: RegExp;
}

export interface LegacyExport {
  /** One document per entry, in file order. */
  lines: string[];
  good: ExpectedImport[];
  broken: BrokenDocument[];
  /** The file as mongoexport writes it by default (JSON lines). */
  jsonLines(): string;
  /** The file as `mongoexport --jsonArray` writes it. */
  jsonArray(): string;
}

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be reproduced. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const DAY_MS = 86_400_000;
const START_MS = Date.UTC(2024, 0, 1);

/** An amount of `minor` cents as Python's repr of the float writes it ("100.5", "100.0"). */
function pythonFloatText(minor: number): string {
  const text = String(minor / 100);
  return text.includes('.') || text.includes('e') ? text : `${text}.0`;
}

/** A datetime as Pydantic's JSON wrote it: the form chosen by `form`, microseconds `micro`. */
function pydanticDate(ms: number, micro: number, form: number): string {
  const offsetMinutes = form === 4 ? 120 : form === 5 ? -330 : 0;
  const local = new Date(ms + offsetMinutes * 60_000);
  const base =
    `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}` +
    `T${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}`;
  const fraction = `.${pad(local.getUTCMilliseconds(), 3)}${pad(micro, 3)}`;
  switch (form) {
    case 0:
      return `${base}${fraction}Z`;
    case 1:
      return `${base}${fraction}+00:00`;
    case 2:
      return `${base}${fraction}`; // naive: UTC
    case 3:
      return base; // naive, whole seconds (ms is 0 for this form)
    case 4:
      return `${base}${fraction}+02:00`;
    case 5:
      return `${base}-05:30`; // whole seconds
    default:
      return `${base}Z`; // whole seconds
  }
}

const BROKEN_KINDS: {
  kind: string;
  reason: RegExp;
  make: (doc: Record<string, unknown>) => string | Record<string, unknown>;
}[] = [
  {
    kind: 'malformed JSON',
    reason: /^malformed JSON$/,
    make: () => '{"_id": {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}, "user_id": , oops}',
  },
  {
    kind: 'wrong key',
    reason: /^full_name: does not decrypt under LEGACY_SECRET_KEY/,
    make: (d) => ({ ...d, full_name: fernetFixtures.wrong_key_pool[0]!.token }),
  },
  {
    kind: 'tampered token',
    reason: /^full_name: does not decrypt under LEGACY_SECRET_KEY/,
    make: (d) => {
      const token = String(d.full_name);
      const at = 60;
      const swapped = token[at] === 'A' ? 'B' : 'A';
      return { ...d, full_name: token.slice(0, at) + swapped + token.slice(at + 1) };
    },
  },
  {
    kind: 'missing user_id',
    reason: /^user_id: missing$/,
    make: (d) => ({ ...d, user_id: undefined }),
  },
  { kind: 'invalid user_id', reason: /^user_id: /, make: (d) => ({ ...d, user_id: 42 }) },
  { kind: 'empty user_id', reason: /^user_id: /, make: (d) => ({ ...d, user_id: '' }) },
  {
    kind: 'unknown type',
    reason: /^transaction_type: /,
    make: (d) => ({ ...d, transaction_type: 'refund' }),
  },
  {
    kind: 'negative amount',
    reason: /^transaction_amount: must be greater than 0$/,
    make: (d) => ({ ...d, transaction_amount: -50.25 }),
  },
  {
    kind: 'zero amount',
    reason: /^transaction_amount: must be greater than 0$/,
    make: (d) => ({ ...d, transaction_amount: 0 }),
  },
  {
    kind: 'NaN amount',
    reason: /^transaction_amount: not a finite number/,
    make: (d) => ({ ...d, transaction_amount: { $numberDouble: 'NaN' } }),
  },
  {
    kind: 'infinite amount',
    reason: /^transaction_amount: not a finite number/,
    make: (d) => ({ ...d, transaction_amount: { $numberDouble: 'Infinity' } }),
  },
  {
    kind: '-infinite amount',
    reason: /^transaction_amount: not a finite number/,
    make: (d) => ({ ...d, transaction_amount: { $numberDouble: '-Infinity' } }),
  },
  {
    kind: 'sub-cent amount',
    reason: /^transaction_amount: .* more decimal places than GHS allows/,
    make: (d) => ({ ...d, transaction_amount: 10.005 }),
  },
  {
    kind: 'impossible date',
    reason: /^transaction_date: not a valid date/,
    make: (d) => ({ ...d, transaction_date: '2024-02-30T10:00:00' }),
  },
  {
    kind: 'garbage date',
    reason: /^transaction_date: not a valid date/,
    make: (d) => ({ ...d, transaction_date: 'last tuesday' }),
  },
  { kind: 'missing _id', reason: /^_id: missing$/, make: (d) => ({ ...d, _id: undefined }) },
  // What the old service took and the v1 API refuses.
  {
    kind: 'future date',
    reason: /^transaction_date: more than 24 hours in the future \(2999-01-01T00:00:00.000Z\)$/,
    make: (d) => ({ ...d, transaction_date: '2999-01-01T00:00:00' }),
  },
  {
    kind: 'name ending in a newline',
    reason: /^full_name: contains a control character \(U\+000A\)$/,
    make: (d) => ({ ...d, full_name: fernetToken('Ama Owusu\n') }),
  },
];

/**
 * `good` valid documents over `users` users (and, with `brokenEach`, that many of every broken
 * kind, at pseudo-random places). `userPrefix` keeps runs of several tests apart.
 */
export function makeLegacyExport(options: {
  users: number;
  good: number;
  brokenEach?: number;
  userPrefix: string;
  seed?: number;
  /** First ObjectId counter (distinct ranges give distinct documents). */
  firstSerial?: number;
}): LegacyExport {
  const rand = random(options.seed ?? 16);
  const pick = (n: number) => Math.floor(rand() * n);
  const good: ExpectedImport[] = [];
  const documents: { text: string; broken?: Omit<BrokenDocument, 'line'> }[] = [];
  let serial = options.firstSerial ?? 1;

  const goodDocument = (): {
    doc: Record<string, unknown>;
    text: string;
    expected: ExpectedImport;
  } => {
    const userId = `${options.userPrefix}-${pick(options.users)}`;
    const form = pick(7);
    const wholeSeconds = form === 3 || form === 5 || form === 6;
    const ms =
      START_MS + pick(730) * DAY_MS + pick(DAY_MS / 1000) * 1000 + (wholeSeconds ? 0 : pick(1000));
    const micro = pick(1000);
    const name = fernetFixtures.pool[pick(fernetFixtures.pool.length)]!;
    const minor = 1 + pick(rand() < 0.5 ? 10_000 : 10_000_000);
    const legacyId = `${Math.floor(ms / 1000)
      .toString(16)
      .padStart(8, '0')}${serial.toString(16).padStart(16, '0')}`;
    serial += 1;
    const type = rand() < 0.6 ? 'credit' : 'debit';
    const amountForm = pick(4);
    const amount =
      amountForm === 0
        ? { $numberDouble: pythonFloatText(minor) }
        : amountForm === 1 && minor % 100 === 0
          ? { $numberInt: String(minor / 100) }
          : '__AMOUNT__';
    const doc = {
      _id: { $oid: legacyId },
      user_id: userId,
      full_name: name.token,
      transaction_date: pydanticDate(ms, micro, form),
      transaction_amount: amount,
      transaction_type: type,
    };
    const text = JSON.stringify(doc).replace('"__AMOUNT__"', pythonFloatText(minor));
    return {
      doc,
      text,
      expected: {
        id: '',
        legacyId,
        userId,
        currency: 'GHS',
        dateMs: ms,
        type,
        amountMinor: BigInt(minor),
        fullName: name.plaintext,
      },
    };
  };

  for (let i = 0; i < options.good; i += 1) {
    const { text, expected } = goodDocument();
    good.push(expected);
    documents.push({ text });
  }
  for (const kind of BROKEN_KINDS) {
    for (let i = 0; i < (options.brokenEach ?? 0); i += 1) {
      const { doc } = goodDocument();
      const made = kind.make({ ...doc, transaction_amount: 12.5 });
      const text = typeof made === 'string' ? made : JSON.stringify(made);
      const legacyId =
        typeof made === 'string' || made._id === undefined
          ? null
          : (doc._id as { $oid: string }).$oid;
      const at = pick(documents.length + 1);
      documents.splice(at, 0, { text, broken: { legacyId, kind: kind.kind, reason: kind.reason } });
    }
  }
  const lines = documents.map((d) => d.text);
  const broken = documents.flatMap((d, i) => (d.broken ? [{ ...d.broken, line: i + 1 }] : []));
  return {
    lines,
    good,
    broken,
    jsonLines: () => `${lines.join('\n')}\n`,
    jsonArray: () => `[${lines.join(',')}]`,
  };
}
