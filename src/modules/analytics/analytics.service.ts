import { cacheKey, type Cache } from '../../platform/cache.js';
import {
  packTaggedBody,
  taggedBody,
  unpackTaggedBody,
  type TaggedBody,
} from '../../platform/http-cache.js';
import type { Db } from '../../db/client.js';
import { primaryOnly, type ReadRouter } from '../../platform/read-replicas.js';
import { AppError, validationError, type ValidationIssue } from '../../platform/errors.js';
import {
  currencyExponent,
  divideHalfEven,
  isCurrencyCode,
  minorToNumber,
} from '../../domain/money.js';
import { parseInstant } from '../../domain/dates.js';
import {
  localDayStarts,
  readAllTime,
  readRange,
  type AnalyticsFigures,
} from './analytics.repository.js';

import type { Analytics, RangeAnalytics } from './analytics.schemas.js';
import { analyticsBody } from './analytics.views.js';

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

export interface AnalyticsServiceDeps {
  db: Db;
  defaultCurrency: string;
  timeZone: string;
  cache: Cache;
  /** Where the figures are read (a fresh-enough replica, or the primary). */
  reads?: ReadRouter;
}

export const analyticsNotFound = (userId: string) =>
  new AppError('ANALYTICS_NOT_FOUND', `Transaction analytics not found for user ID ${userId}`);

export type AnalyticsService = ReturnType<typeof createAnalyticsService>;

/**
 * Per-user analytics, read from rollups kept exact by every write. Knows nothing about HTTP; its
 * answers are the finished v1 response bodies (`analyticsBody`) with their entity tags.
 */
export function createAnalyticsService(deps: AnalyticsServiceDeps) {
  const { db, timeZone } = deps;
  const reads = deps.reads ?? primaryOnly(db);

  /**
   * The body for `entry`, from the cache or rendered by `render`. The cache keeps the finished
   * body with its tag (`analytics-body`, `analytics-range-body`: other names than the figures as
   * JSON that earlier versions stored, so processes of two versions sharing a Redis never read
   * each other's entries): a hit is sent as the bytes Redis returned, with no parse, serialisation
   * or hash of the body per request.
   */
  async function answer(
    userId: string,
    entry: string,
    render: () => Promise<string>,
  ): Promise<TaggedBody> {
    const value = await deps.cache.cached(userId, entry, async () =>
      packTaggedBody(await render()),
    );
    // Not a tagged body (nothing this version writes): answered from the database instead.
    return unpackTaggedBody(value) ?? taggedBody(await render());
  }

  function currencyOf(raw: string | undefined, issues: ValidationIssue[]): string {
    const currency = (raw ?? deps.defaultCurrency).toUpperCase();
    if (!isCurrencyCode(currency)) {
      issues.push({
        loc: ['query', 'currency'],
        msg: `Unknown ISO 4217 currency code: ${raw}`,
        type: 'value_error',
      });
    }
    return currency;
  }

  async function allTime(
    userId: string,
    query: { currency?: string | undefined },
  ): Promise<TaggedBody> {
    const issues: ValidationIssue[] = [];
    const currency = currencyOf(query.currency, issues);
    if (issues.length > 0) throw validationError(issues);
    return answer(userId, `analytics-body:${cacheKey([currency])}`, async () => {
      const figures = await reads.forUser(userId, (readDb) =>
        readAllTime(readDb, userId, currency),
      );
      if (!figures) throw analyticsNotFound(userId);
      return analyticsBody(present(userId, currency, figures));
    });
  }

  async function range(
    userId: string,
    query: {
      currency?: string | undefined;
      start_date?: string | undefined;
      end_date?: string | undefined;
    },
  ): Promise<TaggedBody> {
    const issues: ValidationIssue[] = [];
    const currency = currencyOf(query.currency, issues);
    const bound = (name: 'start_date' | 'end_date') => {
      const raw = query[name];
      if (raw === undefined) return undefined;
      const instant = parseInstant(raw);
      if (!instant) {
        issues.push({
          loc: ['query', name],
          msg: 'Input should be an ISO 8601 date or date-time, e.g. 2024-10-10',
          type: 'datetime_parsing',
        });
      }
      return instant && { raw, instant };
    };
    const parsedStart = bound('start_date');
    const parsedEnd = bound('end_date');
    if (issues.length > 0) throw validationError(issues);
    // A date alone is the start of that day in the analytics time zone, as the database computes
    // it: the same computation that assigns transactions to days, DST gaps included.
    const localDays = [parsedStart, parsedEnd].filter(
      (b): b is { raw: string; instant: Date } => b !== undefined && DATE_ONLY.test(b.raw),
    );
    if (localDays.length > 0 && timeZone !== 'UTC') {
      const starts = await localDayStarts(
        db,
        localDays.map((b) => b.raw),
        timeZone,
      );
      localDays.forEach((b, i) => (b.instant = starts[i] ?? b.instant));
    }
    const start = parsedStart?.instant;
    const end = parsedEnd?.instant;
    if (start && end && start > end) {
      issues.push({
        loc: ['query', 'start_date'],
        msg: 'start_date must not be after end_date',
        type: 'value_error',
      });
    }
    if (issues.length > 0) throw validationError(issues);
    const entry = `analytics-range-body:${cacheKey([currency, start?.toISOString(), end?.toISOString()])}`;
    return answer(userId, entry, async () => {
      const figures = await reads.forUser(userId, (readDb) =>
        readRange(readDb, userId, currency, start, end, timeZone),
      );
      if (!figures) throw analyticsNotFound(userId);
      const range: RangeAnalytics = {
        ...present(userId, currency, figures),
        start_date: start?.toISOString() ?? null,
        end_date: end?.toISOString() ?? null,
      };
      return analyticsBody(range);
    });
  }

  return { allTime, range };
}

/**
 * Figures as the API shows them: money rounded once, here, half-even to the minor unit. Fields in
 * the schema's order: the body is this object's JSON text (`analyticsBody`).
 */
function present(userId: string, currency: string, f: AnalyticsFigures): Analytics {
  const exponent = currencyExponent(currency);
  const total = f.creditTotalMinor + f.debitTotalMinor;
  const net = f.creditTotalMinor - f.debitTotalMinor;
  const average = divideHalfEven(total, BigInt(f.transactionCount));
  const iso = (d: Date | null) => (d ? d.toISOString() : '');
  return {
    user_id: userId,
    currency,
    transaction_count: f.transactionCount,
    credit_count: f.creditCount,
    debit_count: f.debitCount,
    average_transaction_value: minorToNumber(average, exponent),
    credit_total: minorToNumber(f.creditTotalMinor, exponent),
    debit_total: minorToNumber(f.debitTotalMinor, exponent),
    net_total: minorToNumber(net, exponent),
    credit_total_minor: f.creditTotalMinor.toString(),
    debit_total_minor: f.debitTotalMinor.toString(),
    net_total_minor: net.toString(),
    highest_transactions_day: f.busiestDay ?? '',
    highest_transactions_day_count: f.busiestDayCount,
    first_transaction_date: iso(f.firstTransactionDate),
    last_transaction_date: iso(f.lastTransactionDate),
    last_updated: iso(f.lastUpdated),
  };
}
