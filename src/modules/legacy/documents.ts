/**
 * The old service's documents, as `mongoexport --collection transactions` writes them (MongoDB
 * Extended JSON v2, relaxed or canonical), and this service's own export, checked field by field
 * against the v1 API's rules: each field a client writes goes through the API's own schema
 * (api-fields.ts) and the service's own rules after it, so nothing is stored that a POST would
 * refuse, or that a PUT of the same body would. A document either becomes a row to store or a
 * reason it cannot be.
 */
import { createHash } from 'node:crypto';
import { parseInstant } from '../../domain/dates.js';
import { currencyExponent, parseAmount } from '../../domain/money.js';
import {
  FULL_NAME_LENGTH_MAX,
  storedCurrency,
  storedFullName,
  transactionDateOf,
  type TransactionRow,
} from '../transactions/index.js';
import { apiFieldProblem } from './api-fields.js';
import { FernetTokenError, type FernetKey } from './fernet.js';

/**
 * A transaction ready to store, from an old document or from this service's own export: the
 * stored row with its name still in plaintext (`legacyId` null for rows born here).
 */
export type ImportRow = Omit<TransactionRow, 'fullNameCiphertext'> & { fullName: string };

export type Decoded =
  { ok: true; row: ImportRow } | { ok: false; legacyId: string | null; reason: string };

const OBJECT_ID = /^[0-9a-fA-F]{24}$/;

export function isObjectId(value: string): boolean {
  return OBJECT_ID.test(value);
}

const rejected = (legacyId: string | null, reason: string): Decoded => ({
  ok: false,
  legacyId,
  reason,
});

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A document's JSON object, or why the text is not one. */
function parseDocument(text: string): Record<string, Json> | string {
  let document: Json;
  try {
    document = JSON.parse(text) as Json;
  } catch {
    return 'malformed JSON';
  }
  return isObject(document) ? document : 'not a JSON object';
}

/** `_id` as `{"$oid": "…"}` (what mongoexport writes) or a bare 24-hex string. */
function objectIdOf(value: Json | undefined): string | null {
  const text = isObject(value) ? value.$oid : value;
  return typeof text === 'string' && OBJECT_ID.test(text) ? text.toLowerCase() : null;
}

/**
 * The amount's decimal text, or a reason. Relaxed mode writes a JSON number (read as the double
 * it denotes; its shortest decimal form is what `parseAmount` uses); canonical mode writes
 * `{"$numberDouble": "100.5"}` and the like; NaN and the infinities come as `$numberDouble` in
 * both modes.
 */
function amountInput(value: Json | undefined): number | string | { reason: string } {
  if (value === undefined || value === null) return { reason: 'missing' };
  if (typeof value === 'number') return value;
  if (isObject(value)) {
    const double = value.$numberDouble;
    if (typeof double === 'string') {
      if (!/^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(double)) {
        return { reason: `not a finite number (${double.slice(0, 20)})` };
      }
      return Number(double);
    }
    for (const key of ['$numberInt', '$numberLong'] as const) {
      const integer = value[key];
      if (typeof integer === 'string') {
        return /^-?\d{1,20}$/.test(integer)
          ? integer.replace(/^(-?)0+(?=\d)/, '$1')
          : { reason: 'invalid integer' };
      }
    }
    const decimal = value.$numberDecimal;
    if (typeof decimal === 'string') {
      if (/^(-)?(NaN|Inf(inity)?)$/i.test(decimal))
        return { reason: `not a finite number (${decimal})` };
      return decimal;
    }
  }
  return { reason: `not a number (${typeof value === 'string' ? 'a string' : typeof value})` };
}

function amountOf(value: Json | undefined, currency: string): bigint | string {
  const input = amountInput(value);
  if (typeof input === 'object') return `transaction_amount: ${input.reason}`;
  if (typeof input === 'number' && !Number.isFinite(input)) {
    return 'transaction_amount: not a finite number';
  }
  // As a JSON number or a decimal string, the forms a client sends; then the service's rule.
  const problem = apiFieldProblem('transaction_amount', input);
  if (problem !== undefined) return problem;
  const parsed = parseAmount(input, currencyExponent(currency));
  if (parsed.ok) return parsed.minor;
  switch (parsed.error) {
    case 'not_positive':
      return 'transaction_amount: must be greater than 0';
    case 'too_many_fraction_digits':
      return `transaction_amount: ${String(input)} has more decimal places than ${currency} allows (${currencyExponent(currency)}); not rounded`;
    default:
      return `transaction_amount: ${parsed.message}`;
  }
}

/**
 * `transaction_date` as the API takes it: its schema (the text's length), then the service's rule
 * (a real instant, at most 24 hours after `now`, the import's clock as a request's would be).
 * Without `now`, any real instant: a restore reads back rows the service already holds, which may
 * lie further ahead (the old service took any date) and must come back as they were.
 */
function transactionDateFrom(text: string, now: Date | undefined): Date | string {
  const problem = apiFieldProblem('transaction_date', text);
  if (problem !== undefined) return problem;
  if (now === undefined) {
    return parseInstant(text) ?? `transaction_date: not a valid date (${JSON.stringify(text)})`;
  }
  const checked = transactionDateOf(text, now);
  if (checked.ok) return checked.date;
  return checked.error === 'future'
    ? `transaction_date: more than 24 hours in the future (${checked.date.toISOString()})`
    : `transaction_date: not a valid date (${JSON.stringify(text)})`;
}

/** `transaction_date`: the Pydantic string (Z, an offset, or naive = UTC), or a BSON `$date`. */
function dateOf(value: Json | undefined, now: Date): Date | string {
  if (value === undefined || value === null) return 'transaction_date: missing';
  let text: string | undefined;
  if (typeof value === 'string') text = value;
  else if (isObject(value) && value.$date !== undefined) {
    const inner = value.$date;
    if (typeof inner === 'string') text = inner;
    else if (isObject(inner) && typeof inner.$numberLong === 'string') {
      const ms = Number(inner.$numberLong);
      if (Number.isSafeInteger(ms)) text = new Date(ms).toISOString();
    }
  }
  if (text === undefined) return 'transaction_date: not a date string';
  return transactionDateFrom(text, now);
}

function userIdOf(value: Json | undefined): string | { reason: string } {
  if (value === undefined || value === null) return { reason: 'user_id: missing' };
  const problem = apiFieldProblem('user_id', value);
  return problem === undefined ? (value as string) : { reason: problem };
}

/**
 * A name as the API takes it: its schema on the text as sent (so a name ending in a newline is
 * refused, as a POST refuses it, not trimmed into shape), then the service's trimming rule.
 */
function fullNameOf(name: Json | undefined): string | { reason: string } {
  if (name === undefined || name === null) return { reason: 'full_name: missing' };
  const problem = apiFieldProblem('full_name', name);
  if (problem !== undefined) return { reason: problem };
  const stored = storedFullName(name as string);
  if (stored.ok) return stored.name;
  return {
    reason:
      stored.error === 'empty'
        ? 'full_name: empty after trimming'
        : `full_name: ${stored.length} characters after trimming, at most ${FULL_NAME_LENGTH_MAX}`,
  };
}

function typeOf(value: Json | undefined): 'credit' | 'debit' | { reason: string } {
  if (value === undefined || value === null) return { reason: 'transaction_type: missing' };
  const problem = apiFieldProblem('transaction_type', value);
  return problem === undefined ? (value as 'credit' | 'debit') : { reason: problem };
}

/** `currency` as the API takes it: its schema, then upper-cased and known to ICU. */
function currencyOf(value: Json | undefined): string | { reason: string } {
  if (value === undefined || value === null) return { reason: 'currency: missing' };
  const problem = apiFieldProblem('currency', value);
  if (problem !== undefined) return { reason: problem };
  return storedCurrency(value as string) ?? { reason: `currency: unknown (${value as string})` };
}

/** `description` or `metadata`: absent or null is none; anything else meets the API's schema. */
function optionalOf<T>(
  field: 'description' | 'metadata',
  value: Json | undefined,
): { ok: true; value: T | null } | { ok: false; reason: string } {
  if (value === undefined || value === null) return { ok: true, value: null };
  const problem = apiFieldProblem(field, value);
  return problem === undefined ? { ok: true, value: value as T } : { ok: false, reason: problem };
}

/**
 * The new id of an imported row: a UUIDv7 whose time is the ObjectId's (when the old service
 * created the document) and whose other bits are a hash of it, so the same document always gets
 * the same id (a re-run or a resumed run cannot create a second row for it).
 */
export function idForObjectId(objectId: string): string {
  const bytes = createHash('sha256').update(`fido-legacy:${objectId}`).digest().subarray(0, 16);
  const ms = BigInt(Number.parseInt(objectId.slice(0, 8), 16)) * 1000n;
  for (let i = 0; i < 6; i += 1) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** When the ObjectId was made (its first four bytes: seconds since the epoch). */
export function objectIdTime(objectId: string): Date {
  return new Date(Number.parseInt(objectId.slice(0, 8), 16) * 1000);
}

/**
 * One document of the old service's export. `text` is its JSON; `key` decrypts `full_name`; `now`
 * is the clock a transaction date may be at most 24 hours ahead of.
 */
export function decodeLegacyDocument(
  text: string,
  key: FernetKey,
  currency: string,
  now: Date = new Date(),
): Decoded {
  const document = parseDocument(text);
  if (typeof document === 'string') return rejected(null, document);
  const legacyId = objectIdOf(document._id);
  if (legacyId === null) {
    return rejected(null, document._id === undefined ? '_id: missing' : '_id: not an ObjectId');
  }
  const userId = userIdOf(document.user_id);
  if (typeof userId === 'object') return rejected(legacyId, userId.reason);
  const transactionType = typeOf(document.transaction_type);
  if (typeof transactionType === 'object') return rejected(legacyId, transactionType.reason);
  const amountMinor = amountOf(document.transaction_amount, currency);
  if (typeof amountMinor === 'string') return rejected(legacyId, amountMinor);
  const transactionDate = dateOf(document.transaction_date, now);
  if (typeof transactionDate === 'string') return rejected(legacyId, transactionDate);
  const token = document.full_name;
  if (typeof token !== 'string') {
    return rejected(legacyId, token == null ? 'full_name: missing' : 'full_name: not a string');
  }
  let plaintext: string;
  try {
    plaintext = key.decryptText(token);
  } catch (error) {
    if (!(error instanceof FernetTokenError)) throw error;
    return rejected(
      legacyId,
      `full_name: does not decrypt under LEGACY_SECRET_KEY (${error.message})`,
    );
  }
  const fullName = fullNameOf(plaintext);
  if (typeof fullName === 'object') return rejected(legacyId, fullName.reason);
  const created = objectIdTime(legacyId);
  return {
    ok: true,
    row: {
      id: idForObjectId(legacyId),
      legacyId,
      userId,
      fullName,
      transactionDate,
      amountMinor,
      transactionType,
      currency,
      description: null,
      metadata: null,
      version: 1,
      createdAt: created,
      updatedAt: created,
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function instantOf(value: Json | undefined, field: string): Date | string {
  if (typeof value !== 'string') return `${field}: not a date string`;
  const date = value.length <= 40 ? parseInstant(value) : undefined;
  return date ?? `${field}: not a valid date`;
}

/**
 * One line of this service's own NDJSON export (`export --format ndjson`): every column as the API
 * shows it, the name in plaintext. Restored as it was: same id, versions, times, legacy id; the
 * fields a client writes checked as a POST would check them, except that a transaction date may
 * lie any distance ahead (rows the service holds may, and a restore must not depend on its clock).
 */
export function decodeExportedDocument(text: string): Decoded {
  const document = parseDocument(text);
  if (typeof document === 'string') return rejected(null, document);
  const legacyValue = document.legacy_id ?? null;
  const legacyId =
    typeof legacyValue === 'string' && OBJECT_ID.test(legacyValue)
      ? legacyValue.toLowerCase()
      : null;
  if (legacyValue !== null && legacyId === null)
    return rejected(null, 'legacy_id: not an ObjectId');
  const id = document.id;
  if (typeof id !== 'string' || !UUID.test(id)) return rejected(legacyId, 'id: not a UUID');
  const userId = userIdOf(document.user_id);
  if (typeof userId === 'object') return rejected(legacyId, userId.reason);
  const fullName = fullNameOf(document.full_name);
  if (typeof fullName === 'object') return rejected(legacyId, fullName.reason);
  const transactionType = typeOf(document.transaction_type);
  if (typeof transactionType === 'object') return rejected(legacyId, transactionType.reason);
  const currency = currencyOf(document.currency);
  if (typeof currency === 'object') return rejected(legacyId, currency.reason);
  const amountMinor = amountOf(document.transaction_amount, currency);
  if (typeof amountMinor === 'string') return rejected(legacyId, amountMinor);
  const date = document.transaction_date;
  if (typeof date !== 'string') return rejected(legacyId, 'transaction_date: not a date string');
  const transactionDate = transactionDateFrom(date, undefined);
  if (typeof transactionDate === 'string') return rejected(legacyId, transactionDate);
  const createdAt = instantOf(document.created_at, 'created_at');
  if (typeof createdAt === 'string') return rejected(legacyId, createdAt);
  const updatedAt = instantOf(document.updated_at, 'updated_at');
  if (typeof updatedAt === 'string') return rejected(legacyId, updatedAt);
  const version = document.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    return rejected(legacyId, 'version: not a positive integer');
  }
  const description = optionalOf<string>('description', document.description);
  if (!description.ok) return rejected(legacyId, description.reason);
  const metadata = optionalOf<Record<string, string>>('metadata', document.metadata);
  if (!metadata.ok) return rejected(legacyId, metadata.reason);
  return {
    ok: true,
    row: {
      id,
      legacyId,
      userId,
      fullName,
      transactionDate,
      amountMinor,
      transactionType,
      currency,
      description: description.value,
      metadata: metadata.value,
      version,
      createdAt,
      updatedAt,
    },
  };
}
