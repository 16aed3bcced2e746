import { v7 as uuidv7 } from 'uuid';
import type { EventType } from '../../db/schema/index.js';
import { inTransaction, type Db, type DbTx } from '../../db/client.js';
import { invalidCursor, validationError, type ValidationIssue } from '../../platform/errors.js';
import { DecryptionError, type FieldCipher } from '../../platform/crypto.js';
import { applyRollups, changesRollups } from '../analytics/index.js';
import { appendEvent } from '../events/index.js';
import { cacheKey, type Cache } from '../../platform/cache.js';
import {
  packTaggedBody,
  taggedBody,
  unpackTaggedBody,
  type TaggedBody,
} from '../../platform/http-cache.js';
import { primaryOnly, type ReadRouter } from '../../platform/read-replicas.js';
import { historyBody, publicFields, transactionView } from './transactions.views.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { isUuid } from '../../domain/ids.js';
import { textLength } from '../../domain/text.js';
import { keysetPage, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX } from '../../domain/pagination.js';
import { FUTURE_TOLERANCE_MS, parseInstant } from '../../domain/dates.js';
import { currencyExponent, isCurrencyCode, parseAmount, rescaleMinor } from '../../domain/money.js';
import {
  deleteTransaction,
  findTransactionById,
  insertTransaction,
  listHistory,
  updateTransaction,
  userHasTransactions,
  type HistoryFilters,
  type TransactionChanges,
  type TransactionRef,
  type TransactionRow,
} from './transactions.repository.js';
import { FULL_NAME_LENGTH_MAX } from './transactions.limits.js';
import {
  type CreateTransactionBody,
  type HistoryQuery,
  type Transaction,
  type UpdateTransactionBody,
} from './transactions.schemas.js';
import {
  historyNotFound,
  transactionNotFound,
  transactionNotFoundForUpdate,
  versionMismatch,
} from './transactions.errors.js';

export interface TransactionsServiceDeps {
  db: Db;
  cipher: FieldCipher;
  defaultCurrency: string;
  /** The zone whose calendar days the daily rollups count in. */
  analyticsTimeZone: string;
  cache: Cache;
  /** Where history pages and reads by id run (a fresh-enough replica, or the primary). */
  reads?: ReadRouter;
  /** Told after every committed write (the event worker looks for the new event at once). */
  afterCommit?: () => void;
  /** Largest history page (PAGE_SIZE_MAX, which may lower the contract's 500). */
  pageSizeMax?: number;
  now?: () => Date;
}

/** A history page as the route sends it: the v1 response body and its entity tag. */
export type HistoryPage = TaggedBody;

/** A condition on the current version, from `If-Match`: `*` or a list of versions. */
export type VersionPrecondition = '*' | readonly string[];

export interface WriteOptions {
  /** Run inside this database transaction (the idempotency layer's) instead of a new one. */
  dbTx?: DbTx | undefined;
  ifMatch?: VersionPrecondition | undefined;
  /** A user token's user: a record of anyone else is answered as not found. */
  owner?: string | undefined;
  /** Told whose record the write changes, once known (before its commit). */
  touched?: ((userId: string) => void) | undefined;
}

/** A new transaction that has passed every rule, ready to store. */
export interface NewTransaction {
  userId: string;
  fullName: string;
  transactionDate: Date;
  amountMinor: bigint;
  transactionType: 'credit' | 'debit';
  currency: string;
  description: string | null;
  metadata: Record<string, string> | null;
}

export type TransactionsService = ReturnType<typeof createTransactionsService>;

/** The rules for recording, changing and reading transactions. Knows nothing about HTTP. */
export function createTransactionsService(deps: TransactionsServiceDeps) {
  const { db, cipher } = deps;
  const now = deps.now ?? (() => new Date());
  const pageSizeMax = deps.pageSizeMax ?? PAGE_SIZE_MAX;
  const reads = deps.reads ?? primaryOnly(db);

  /** The API's view of a row (transactionView, with this service's cipher). */
  function toView(row: TransactionRow): Transaction {
    return transactionView(row, cipher);
  }

  /**
   * Applies the rules a new transaction must meet, before any database work: an invalid request
   * never takes a connection, and answers 422 even while the database is down.
   */
  function checkCreate(body: CreateTransactionBody): NewTransaction {
    const issues: ValidationIssue[] = [];
    const currency = checkCurrency(body.currency ?? deps.defaultCurrency, issues);
    const fullName = checkFullName(body.full_name, issues);
    const transactionDate =
      body.transaction_date == null
        ? now()
        : checkDate(body.transaction_date, ['body', 'transaction_date'], issues, now());
    const amountMinor =
      currency === undefined ? undefined : checkAmount(body.transaction_amount, currency, issues);
    if (issues.length > 0 || !fullName || !transactionDate || !currency || !amountMinor) {
      throw validationError(issues);
    }
    return {
      userId: body.user_id,
      fullName,
      transactionDate,
      amountMinor,
      transactionType: body.transaction_type,
      currency,
      description: body.description ?? null,
      metadata: body.metadata ?? null,
    };
  }

  /** The row a create will store, complete (id, encrypted name, version, times) before any write. */
  function prepareCreate(input: NewTransaction): TransactionRow {
    const id = uuidv7();
    const timestamp = now();
    const { fullName, ...columns } = input;
    return {
      ...columns,
      // In the key order jsonb stores, so the answer shows what every later read will.
      metadata: columns.metadata && jsonbKeyOrder(columns.metadata),
      id,
      fullNameCiphertext: cipher.encrypt(fullName, id),
      version: 1,
      createdAt: timestamp,
      updatedAt: timestamp,
      legacyId: null,
    };
  }

  /**
   * Stores a prepared row with its rollups and its event in one statement (one round trip),
   * atomic without a surrounding transaction; in `options.dbTx` when given.
   */
  async function create(row: TransactionRow, options: Pick<WriteOptions, 'dbTx'> = {}) {
    await insertTransaction(options.dbTx ?? db, row, {
      timeZone: deps.analyticsTimeZone,
      eventId: uuidv7(),
      eventPayload: eventPayload(row),
    });
    return row;
  }

  /** One transaction; with `owner`, only if that user owns it (else not found, as if absent). */
  async function get(id: string, owner?: string): Promise<TransactionRow> {
    const ref = refOf(id);
    const row = ref
      ? await reads.byRecord(
          (readDb) => findTransactionById(readDb, ref),
          (found) => found.userId,
        )
      : undefined;
    if (!row || !ownedBy(row, owner)) throw transactionNotFound(id);
    return row;
  }

  /**
   * A page of a user's history, as the finished v1 response body (see `historyBody`) and its
   * entity tag (the hash every GET's body gets, computed once with the body).
   */
  async function history(userId: string, query: HistoryQuery): Promise<HistoryPage> {
    const issues: ValidationIssue[] = [];
    const limit = query.limit ?? Math.min(PAGE_SIZE_DEFAULT, pageSizeMax);
    if (limit > pageSizeMax) {
      issues.push({
        loc: ['query', 'limit'],
        msg: `Input should be less than or equal to ${pageSizeMax}`,
        type: 'less_than_equal',
      });
    }
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    if (query.cursor !== undefined && !after) {
      issues.push(invalidCursor('cursor'));
    }
    const filters: HistoryFilters = {
      startDate: optionalBound(query.start_date, 'start_date', issues),
      endDate: optionalBound(query.end_date, 'end_date', issues),
      transactionType: query.transaction_type,
      currency: query.currency?.toUpperCase(),
    };
    if (filters.startDate && filters.endDate && filters.startDate > filters.endDate) {
      issues.push({
        loc: ['query', 'start_date'],
        msg: 'start_date must not be after end_date',
        type: 'value_error',
      });
    }
    if (issues.length > 0) throw validationError(issues);

    // `history-page-bytes`: entries hold the tag and body sealed as bytes (`sealBytes`); another
    // name than the earlier text-sealed pages, bodies alone and JSON rows, so processes of two
    // versions sharing a Redis never read each other's (an upgrade's old entries are misses).
    const entry = `history-page-bytes:${cacheKey([
      limit,
      query.cursor,
      filters.startDate?.toISOString(),
      filters.endDate?.toISOString(),
      filters.transactionType,
      filters.currency,
    ])}`;
    const render = async (): Promise<string> => {
      // One row more than asked tells whether another page exists without a count. Both
      // queries on one target: a replica that has replayed the user's writes, or the primary.
      const rows = await reads.forUser(userId, async (readDb) => {
        const found = await listHistory(readDb, userId, filters, after, limit + 1);
        if (found.length > 0) return found;
        const narrowed = after || Object.values(filters).some((v) => v !== undefined);
        if (!narrowed || !(await userHasTransactions(readDb, userId))) {
          throw historyNotFound(userId);
        }
        return found;
      });
      const page = keysetPage(rows, limit, encodeCursor);
      return historyBody(page.items.map(toView), page.pagination);
    };
    // The finished body is cached with its tag, sealed as one value bound to this user and entry:
    // it holds names. A hit then costs one decryption, where cached rows cost one per name, a
    // parse and a serialisation (about 2 ms of CPU for a page of 100), and no hash of the body.
    // Sealed as bytes and sent as bytes: no base64 and no text of the page's size on the way from
    // Redis to the socket.
    const associatedData = `cache:${userId}:${entry}`;
    let rendered: HistoryPage | undefined;
    const sealed = await deps.cache.cached(userId, entry, async () => {
      const packed = packTaggedBody(await render());
      rendered = unpackTaggedBody(packed);
      return cipher.sealBytes(packed, associatedData);
    });
    if (rendered !== undefined) return rendered;
    try {
      const page = unpackTaggedBody(cipher.openBytes(sealed, associatedData));
      if (page !== undefined) return page;
    } catch (error) {
      if (!(error instanceof DecryptionError)) throw error;
    }
    // Sealed under a key since retired from the ring (or not a sealed page): read it afresh.
    return taggedBody(await render());
  }

  /** Call once a write has committed: the user's cached reads are never served again. */
  async function committed(row: Pick<TransactionRow, 'userId'>): Promise<void> {
    await deps.cache.invalidate(row.userId);
    deps.afterCommit?.();
  }

  async function update(id: string, body: UpdateTransactionBody, options: WriteOptions = {}) {
    const ref = refOf(id);
    if (!ref) throw transactionNotFoundForUpdate(id);
    return inTransaction(db, options.dbTx, async (dbTx) => {
      const current = await findTransactionById(dbTx, ref, { forUpdate: true });
      if (!current || !ownedBy(current, options.owner)) throw transactionNotFoundForUpdate(id);
      options.touched?.(current.userId);
      checkPrecondition(current, options.ifMatch);
      const changes = checkChanges(current, body);
      const saved = await updateTransaction(dbTx, current, changes, now());
      if (changesRollups(current, saved)) {
        await applyRollups(dbTx, { removed: current, added: saved }, deps.analyticsTimeZone);
      }
      await recordEvent(dbTx, 'transaction.updated', saved, current);
      return saved;
    });
  }

  async function remove(id: string, options: WriteOptions = {}): Promise<TransactionRow> {
    const ref = refOf(id);
    if (!ref) throw transactionNotFound(id);
    return inTransaction(db, options.dbTx, async (dbTx) => {
      const current = await findTransactionById(dbTx, ref, { forUpdate: true });
      if (!current || !ownedBy(current, options.owner)) throw transactionNotFound(id);
      options.touched?.(current.userId);
      checkPrecondition(current, options.ifMatch);
      await deleteTransaction(dbTx, current);
      await applyRollups(dbTx, { removed: current }, deps.analyticsTimeZone);
      await recordEvent(dbTx, 'transaction.deleted', current);
      return current;
    });
  }

  /** Validates a partial update against the current row and returns the columns to change. */
  function checkChanges(current: TransactionRow, body: UpdateTransactionBody): TransactionChanges {
    const issues: ValidationIssue[] = [];
    const changes: TransactionChanges = {};
    if (body.user_id !== undefined && body.user_id !== current.userId) {
      issues.push({
        loc: ['body', 'user_id'],
        msg: 'user_id cannot be changed',
        type: 'immutable',
      });
    }
    if (body.full_name !== undefined) {
      const fullName = checkFullName(body.full_name, issues);
      if (fullName) changes.fullNameCiphertext = cipher.encrypt(fullName, current.id);
    }
    if (body.transaction_date !== undefined) {
      const date = checkDate(body.transaction_date, ['body', 'transaction_date'], issues, now());
      if (date) changes.transactionDate = date;
    }
    if (body.transaction_type !== undefined) changes.transactionType = body.transaction_type;
    if (body.description !== undefined) changes.description = body.description;
    if (body.metadata !== undefined) changes.metadata = body.metadata;

    const currency =
      body.currency === undefined ? current.currency : checkCurrency(body.currency, issues);
    if (currency !== undefined) {
      if (currency !== current.currency) changes.currency = currency;
      if (body.transaction_amount !== undefined) {
        const amount = checkAmount(body.transaction_amount, currency, issues);
        if (amount) changes.amountMinor = amount;
      } else if (currency !== current.currency) {
        // The amount stays the same value; only its unit of account changes.
        const rescaled = rescaleMinor(
          current.amountMinor,
          currencyExponent(current.currency),
          currencyExponent(currency),
        );
        if (rescaled === null) {
          issues.push({
            loc: ['body', 'currency'],
            msg: `The current amount cannot be expressed in ${currency} (too many decimal places or too large); send transaction_amount too`,
            type: 'value_error',
          });
        } else {
          changes.amountMinor = rescaled;
        }
      }
    }
    const touched = Object.keys(body).some((key) => UPDATABLE_FIELDS.has(key));
    if (!touched) {
      issues.push({
        loc: ['body'],
        msg: `At least one field to update is required: ${[...UPDATABLE_FIELDS].join(', ')}`,
        type: 'missing',
      });
    }
    if (issues.length > 0) throw validationError(issues);
    return changes;
  }

  async function recordEvent(
    dbTx: Db,
    type: EventType,
    row: TransactionRow,
    previous?: TransactionRow,
  ): Promise<void> {
    await appendEvent(dbTx, {
      type,
      userId: row.userId,
      transactionId: row.id,
      payload: eventPayload(row, previous),
    });
  }

  return { checkCreate, prepareCreate, create, get, history, update, remove, committed, toView };
}

const UPDATABLE_FIELDS = new Set([
  'full_name',
  'transaction_date',
  'transaction_amount',
  'transaction_type',
  'currency',
  'description',
  'metadata',
]);

/** An object's keys as PostgreSQL's jsonb orders them: shorter keys first, then by their bytes. */
export function jsonbKeyOrder<T>(object: Record<string, T>): Record<string, T> {
  const keys = Object.keys(object).map((key) => ({ key, bytes: Buffer.from(key, 'utf8') }));
  keys.sort((a, b) => a.bytes.length - b.bytes.length || Buffer.compare(a.bytes, b.bytes));
  return Object.fromEntries(keys.map(({ key }) => [key, object[key]!]));
}

const OBJECT_ID = /^[0-9a-fA-F]{24}$/;

/**
 * What a path's id names: a transaction id (a UUID), or an imported row's ObjectId from the old
 * service, which its clients still hold; anything else names nothing.
 */
function refOf(id: string): TransactionRef | undefined {
  if (isUuid(id)) return { id: id.toLowerCase() };
  if (OBJECT_ID.test(id)) return { legacyId: id.toLowerCase() };
  return undefined;
}

/** An event's payload: the transaction (and what it was, on update) without the name. */
export function eventPayload(
  row: TransactionRow,
  previous?: TransactionRow,
): Record<string, unknown> {
  return {
    transaction: publicFields(row),
    ...(previous ? { previous: publicFields(previous) } : {}),
  };
}

function ownedBy(row: TransactionRow, owner: string | undefined): boolean {
  return owner === undefined || row.userId === owner;
}

function checkPrecondition(current: TransactionRow, ifMatch: VersionPrecondition | undefined) {
  if (ifMatch === undefined || ifMatch === '*') return;
  // Strong comparison (RFC 9110 8.8.3.2): "01" is not the tag "1".
  if (!ifMatch.includes(String(current.version))) {
    throw versionMismatch(current.id, current.version);
  }
}

/*
 * The rules a field meets beyond its schema (transactions.schemas.ts), as pure functions: the
 * service applies them to a request, the legacy import to a document, so both refuse the same.
 */

/** A currency as sent (its schema checked the form): upper-cased, if ICU knows it. */
export function storedCurrency(raw: string): string | undefined {
  const currency = raw.toUpperCase();
  return isCurrencyCode(currency) ? currency : undefined;
}

/** A name as sent (its schema checked the text): trimmed, 1–FULL_NAME_LENGTH_MAX characters. */
export function storedFullName(
  raw: string,
): { ok: true; name: string } | { ok: false; error: 'empty' | 'too_long'; length: number } {
  const name = raw.trim();
  const length = textLength(name);
  if (length < 1) return { ok: false, error: 'empty', length };
  if (length > FULL_NAME_LENGTH_MAX) return { ok: false, error: 'too_long', length };
  return { ok: true, name };
}

/**
 * A transaction date as sent (its schema bounded the length): a real instant, at most
 * FUTURE_TOLERANCE_MS after `now`.
 */
export function transactionDateOf(
  raw: string,
  now: Date,
):
  | { ok: true; date: Date }
  | { ok: false; error: 'invalid' }
  | { ok: false; error: 'future'; date: Date } {
  const date = parseInstant(raw);
  if (!date) return { ok: false, error: 'invalid' };
  if (date.getTime() > now.getTime() + FUTURE_TOLERANCE_MS) {
    return { ok: false, error: 'future', date };
  }
  return { ok: true, date };
}

function checkCurrency(raw: string, issues: ValidationIssue[]): string | undefined {
  const currency = storedCurrency(raw);
  if (currency !== undefined) return currency;
  issues.push({
    loc: ['body', 'currency'],
    msg: `Unknown ISO 4217 currency code: ${raw}`,
    type: 'value_error',
  });
  return undefined;
}

function checkFullName(raw: string, issues: ValidationIssue[]): string | undefined {
  const stored = storedFullName(raw);
  if (stored.ok) return stored.name;
  const empty = stored.error === 'empty';
  issues.push({
    loc: ['body', 'full_name'],
    msg: empty
      ? 'String should have at least 1 character after trimming'
      : `String should have at most ${FULL_NAME_LENGTH_MAX} characters after trimming`,
    type: empty ? 'string_too_short' : 'string_too_long',
  });
  return undefined;
}

function checkAmount(
  raw: unknown,
  currency: string,
  issues: ValidationIssue[],
): bigint | undefined {
  const parsed = parseAmount(raw, currencyExponent(currency));
  if (parsed.ok) return parsed.minor;
  issues.push({
    loc: ['body', 'transaction_amount'],
    msg:
      parsed.error === 'too_many_fraction_digits'
        ? `${parsed.message} for ${currency}`
        : parsed.message,
    // The schema reports a negative JSON number as greater_than; a negative string says the same.
    type: parsed.error === 'not_positive' ? 'greater_than' : parsed.error,
  });
  return undefined;
}

function checkDate(
  raw: string,
  loc: (string | number)[],
  issues: ValidationIssue[],
  reference: Date,
): Date | undefined {
  const checked = transactionDateOf(raw, reference);
  if (checked.ok) return checked.date;
  issues.push(
    checked.error === 'invalid'
      ? {
          loc,
          msg: 'Input should be an ISO 8601 date or date-time, e.g. 2024-10-10T09:00:00Z',
          type: 'datetime_parsing',
        }
      : {
          loc,
          msg: 'Date should not be more than 24 hours in the future',
          type: 'datetime_future',
        },
  );
  return undefined;
}

function optionalBound(
  raw: string | undefined,
  name: string,
  issues: ValidationIssue[],
): Date | undefined {
  if (raw === undefined) return undefined;
  const date = parseInstant(raw);
  if (!date) {
    issues.push({
      loc: ['query', name],
      msg: 'Input should be an ISO 8601 date or date-time, e.g. 2024-10-10',
      type: 'datetime_parsing',
    });
  }
  return date;
}
