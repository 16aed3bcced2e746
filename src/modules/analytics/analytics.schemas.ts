import { Type, type Static } from 'typebox';
import { DATE_INPUT_LENGTH_MAX } from '../../domain/dates.js';
import { USER_ID_LENGTH_MAX } from '../../domain/ids.js';
import { PRINTABLE_TEXT, PRINTABLE_TEXT_MESSAGE } from '../../domain/text.js';

// The same rules as a user_id everywhere else: a NUL or an unpaired surrogate would otherwise
// reach PostgreSQL and fail there (a 500) instead of here (a 422 naming the parameter).
export const AnalyticsParams = Type.Object({
  user_id: Type.String({
    minLength: 1,
    maxLength: USER_ID_LENGTH_MAX,
    pattern: PRINTABLE_TEXT,
    'x-error-message': PRINTABLE_TEXT_MESSAGE,
  }),
});

const CurrencyQuery = Type.Optional(
  Type.String({
    pattern: '^[A-Za-z]{3}$',
    'x-error-message': 'Input should be a three-letter ISO 4217 currency code',
    description: 'ISO 4217 code; defaults to the server default (GHS).',
  }),
);

export const AnalyticsQuery = Type.Object({ currency: CurrencyQuery });
export type AnalyticsQuery = Static<typeof AnalyticsQuery>;

const bound = (which: string) =>
  Type.Optional(
    Type.String({
      maxLength: DATE_INPUT_LENGTH_MAX,
      description:
        `Inclusive ${which} bound: an ISO 8601 date-time, or a date meaning its midnight in ` +
        'the analytics time zone (ANALYTICS_TIMEZONE, default UTC).',
    }),
  );

export const RangeQuery = Type.Object({
  currency: CurrencyQuery,
  start_date: bound('lower'),
  end_date: bound('upper'),
});
export type RangeQuery = Static<typeof RangeQuery>;

const money = (what: string) =>
  Type.Number({ description: `${what}, in the currency's major unit (exact up to 15 digits).` });
const minor = (what: string) =>
  Type.String({
    pattern: '^-?\\d+$',
    description: `${what} in minor units, as an exact integer string (never rounded).`,
  });

export const Analytics = Type.Object(
  {
    user_id: Type.String(),
    currency: Type.String(),
    transaction_count: Type.Integer(),
    credit_count: Type.Integer(),
    debit_count: Type.Integer(),
    average_transaction_value: money(
      'Mean transaction amount, credits and debits alike, rounded half-even to the minor unit',
    ),
    credit_total: money('Sum of credits'),
    debit_total: money('Sum of debits'),
    net_total: money('Credits minus debits'),
    credit_total_minor: minor('Sum of credits'),
    debit_total_minor: minor('Sum of debits'),
    net_total_minor: minor('Credits minus debits'),
    highest_transactions_day: Type.String({
      format: 'date',
      description:
        'The calendar day (in ANALYTICS_TIMEZONE) with most transactions; ties go to the earliest.',
    }),
    highest_transactions_day_count: Type.Integer(),
    first_transaction_date: Type.String({ format: 'date-time' }),
    last_transaction_date: Type.String({ format: 'date-time' }),
    last_updated: Type.String({
      format: 'date-time',
      description: 'When a write last changed this user and currency.',
    }),
  },
  { title: 'Analytics' },
);
export type Analytics = Static<typeof Analytics>;

export const RangeAnalytics = Type.Object(
  {
    ...Analytics.properties,
    start_date: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    end_date: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { title: 'RangeAnalytics' },
);
export type RangeAnalytics = Static<typeof RangeAnalytics>;

const envelope = <T extends ReturnType<typeof Type.Object>>(data: T, title: string) =>
  Type.Object({ data, code: Type.Integer(), message: Type.String() }, { title });

export const AnalyticsEnvelope = envelope(Analytics, 'AnalyticsResponse');
export const RangeAnalyticsEnvelope = envelope(RangeAnalytics, 'RangeAnalyticsResponse');
