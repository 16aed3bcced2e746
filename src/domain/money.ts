/**
 * Money as an exact integer count of minor units (bigint). Amounts are parsed from JSON numbers or
 * decimal strings by manipulating their digits, never by float arithmetic, and written back as
 * decimals that survive a JSON round trip unchanged.
 */

// Any decimal with at most 15 significant digits survives decimal -> IEEE double -> decimal exactly.
export const SIGNIFICANT_DIGITS_MAX = 15;

// Bounding the minor-unit count (not only the significant digits) keeps every stored amount, and
// its output as a JSON number, exact: 1e21 has one significant digit but 10^21 minor units of JPY
// would not fit in 15 digits. So an amount is valid only if minor < 10^15.
const MINOR_LIMIT = 10n ** BigInt(SIGNIFICANT_DIGITS_MAX);

const CURRENCY_CODE = /^[A-Z]{3}$/;

// Intl accepts any well-formed code (e.g. 'ABC') and defaults it to 2 digits, so only the codes
// ICU actually knows are allowed.
const SUPPORTED_CURRENCIES: ReadonlySet<string> = new Set(Intl.supportedValuesOf('currency'));

const exponentCache = new Map<string, number>();

export function isCurrencyCode(code: string): boolean {
  return CURRENCY_CODE.test(code) && SUPPORTED_CURRENCIES.has(code);
}

export function currencyExponent(currency: string): number {
  const cached = exponentCache.get(currency);
  if (cached !== undefined) return cached;
  if (!isCurrencyCode(currency)) {
    throw new RangeError(`Unknown currency code: ${JSON.stringify(currency)}`);
  }
  const exponent = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
    .maximumFractionDigits;
  if (exponent === undefined) {
    throw new RangeError(`No minor-unit exponent for currency ${currency}`);
  }
  exponentCache.set(currency, exponent);
  return exponent;
}

export type AmountError =
  | 'invalid_type'
  | 'invalid_format'
  | 'not_positive'
  | 'too_many_fraction_digits'
  | 'too_many_significant_digits';

export type AmountParse =
  { ok: true; minor: bigint } | { ok: false; error: AmountError; message: string };

function fail(error: AmountError, message: string): AmountParse {
  return { ok: false, error, message };
}

function assertExponent(exponent: number): void {
  if (!Number.isSafeInteger(exponent) || exponent < 0) {
    throw new RangeError(`Exponent must be a non-negative integer, got ${exponent}`);
  }
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/**
 * Splits a canonical unsigned decimal (`0`, `12`, `0.5`, `10.500`) into its integer and fraction
 * digits, or returns null for anything else. Hand-written rather than a regex so that a hostile
 * multi-megabyte string costs linear time.
 */
function splitCanonicalDecimal(text: string): { int: string; frac: string } | null {
  const length = text.length;
  let i = 0;
  while (i < length && isDigit(text.charCodeAt(i))) i++;
  const int = text.slice(0, i);
  // Leading zeros ('007.5') are rejected: JSON forbids them in numbers and some parsers read octal.
  if (int.length === 0 || (int.length > 1 && int.charCodeAt(0) === 48)) return null;
  if (i === length) return { int, frac: '' };
  if (text.charCodeAt(i) !== 46) return null;
  const fracStart = ++i;
  while (i < length && isDigit(text.charCodeAt(i))) i++;
  if (i !== length || i === fracStart) return null;
  return { int, frac: text.slice(fracStart) };
}

function stripTrailingZeros(digits: string): string {
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === 48) end--;
  return digits.slice(0, end);
}

function stripLeadingZeros(digits: string): string {
  let start = 0;
  while (start < digits.length && digits.charCodeAt(start) === 48) start++;
  return digits.slice(start);
}

const NUMBER_TEXT = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/;

/** Expands `String(n)` of a finite number (`1e-7`, `-1.5e+21`) into plain decimal notation. */
function numberToDecimal(n: number): string {
  // String(n) is the shortest text that reads back as n: the digits the JSON sender meant.
  const text = String(n);
  const match = NUMBER_TEXT.exec(text);
  if (match === null) throw new Error(`Unexpected number text: ${text}`);
  const [, sign = '', intDigits = '', fracDigits = '', exp] = match;
  if (exp === undefined) return text;
  const digits = intDigits + fracDigits;
  const point = intDigits.length + Number(exp);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

const MESSAGE_INVALID_TYPE = 'Input should be a number or a decimal string';
const MESSAGE_INVALID_FORMAT = 'Input should be a valid decimal number';
const MESSAGE_NOT_POSITIVE = 'Input should be greater than 0';

function fractionDigitsMessage(exponent: number): string {
  if (exponent === 0) return 'Input should have no decimal places';
  return `Input should have at most ${exponent} decimal place${exponent === 1 ? '' : 's'}`;
}

function parseDecimalText(text: string, exponent: number): AmountParse {
  // '-5' is reported as not positive (the useful answer for the client); '+5' stays a format error.
  const negative = text.charCodeAt(0) === 45;
  const parts = splitCanonicalDecimal(negative ? text.slice(1) : text);
  if (parts === null) return fail('invalid_format', MESSAGE_INVALID_FORMAT);

  const int = parts.int === '0' ? '' : parts.int;
  // Trailing fractional zeros do not change the value, so '10.500' is an exact 2-decimal amount.
  const frac = stripTrailingZeros(parts.frac);
  if (negative || (int === '' && frac === '')) return fail('not_positive', MESSAGE_NOT_POSITIVE);
  if (frac.length > exponent) {
    return fail('too_many_fraction_digits', fractionDigitsMessage(exponent));
  }
  const digits = stripLeadingZeros(int + frac);
  // Trailing integer zeros are not significant either: 1e21 has one significant digit.
  if (stripTrailingZeros(digits).length > SIGNIFICANT_DIGITS_MAX) {
    return fail(
      'too_many_significant_digits',
      `Input should have at most ${SIGNIFICANT_DIGITS_MAX} significant digits`,
    );
  }
  // The minor-unit count has digits.length + (exponent - frac.length) digits; checking that before
  // building a bigint keeps '1' followed by a million zeros cheap.
  if (digits.length + exponent - frac.length > SIGNIFICANT_DIGITS_MAX) {
    return fail(
      'too_many_significant_digits',
      `Input should be less than ${formatMinor(MINOR_LIMIT, exponent)}`,
    );
  }
  return { ok: true, minor: BigInt(digits + '0'.repeat(exponent - frac.length)) };
}

/**
 * Parses an amount (a JSON number or a decimal string) into minor units of a currency with the
 * given exponent. The amount must be positive, exact at that exponent and below 10^15 minor units.
 */
export function parseAmount(input: unknown, exponent: number): AmountParse {
  assertExponent(exponent);
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return fail('invalid_format', MESSAGE_INVALID_FORMAT);
    return parseDecimalText(numberToDecimal(input), exponent);
  }
  if (typeof input === 'string') return parseDecimalText(input, exponent);
  return fail('invalid_type', MESSAGE_INVALID_TYPE);
}

/** The exact decimal text of `minor` minor units, without trailing fractional zeros. */
export function formatMinor(minor: bigint, exponent: number): string {
  assertExponent(exponent);
  const sign = minor < 0n ? '-' : '';
  const digits = (minor < 0n ? -minor : minor).toString().padStart(exponent + 1, '0');
  const int = digits.slice(0, digits.length - exponent);
  const frac = stripTrailingZeros(digits.slice(digits.length - exponent));
  return frac === '' ? `${sign}${int}` : `${sign}${int}.${frac}`;
}

/** The JSON number for an amount; exact when |minor| < 10^15. */
export function minorToNumber(minor: bigint, exponent: number): number {
  return Number(formatMinor(minor, exponent));
}

/**
 * Re-expresses an amount in another exponent, or returns null if it does not fit: either digits
 * would be lost, or the result would reach 10^15 minor units (the limit every amount obeys).
 */
export function rescaleMinor(
  minor: bigint,
  fromExponent: number,
  toExponent: number,
): bigint | null {
  assertExponent(fromExponent);
  assertExponent(toExponent);
  let result: bigint;
  if (toExponent >= fromExponent) {
    result = minor * 10n ** BigInt(toExponent - fromExponent);
  } else {
    const factor = 10n ** BigInt(fromExponent - toExponent);
    if (minor % factor !== 0n) return null;
    result = minor / factor;
  }
  const magnitude = result < 0n ? -result : result;
  return magnitude < MINOR_LIMIT ? result : null;
}

/**
 * numerator / denominator rounded to the nearest integer, ties to even (banker's rounding), so
 * that averages over many values carry no systematic upward bias.
 */
export function divideHalfEven(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError('Denominator must be greater than 0');
  const magnitude = numerator < 0n ? -numerator : numerator;
  let quotient = magnitude / denominator;
  const twiceRemainder = (magnitude % denominator) * 2n;
  if (twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n)) {
    quotient += 1n;
  }
  return numerator < 0n ? -quotient : quotient;
}
