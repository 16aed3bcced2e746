/** How far ahead a transaction date may lie: clocks disagree, and time zones run ahead of UTC. */
export const FUTURE_TOLERANCE_MS = 24 * 60 * 60 * 1000;
/** A date or date-time as sent, in characters (the longest real form is about 30). */
export const DATE_INPUT_LENGTH_MAX = 40;
const YEAR_MIN = 1900;
const YEAR_MAX = 9999;
/** The instants parseInstant can return, with a day's margin for offsets across a year's edge. */
export const INSTANT_MIN_MS = Date.UTC(YEAR_MIN, 0, 1) - 24 * 60 * 60 * 1000;
export const INSTANT_MAX_MS = Date.UTC(YEAR_MAX + 1, 0, 1) + 24 * 60 * 60 * 1000;

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO 8601 date or date-time into an instant. A date alone means its midnight UTC; a
 * date-time without an offset is taken as UTC (what the old service's clients send); digits finer
 * than a millisecond are dropped, since storage keeps milliseconds. Returns undefined when the text
 * is not a real calendar instant.
 */
export function parseInstant(text: string): Date | undefined {
  const dateOnly = DATE_ONLY.exec(text);
  if (dateOnly) {
    const [, y, m, d] = dateOnly;
    return fromParts(Number(y), Number(m), Number(d), 0, 0, 0, 0, 0);
  }
  const match = DATE_TIME.exec(text);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s = '0', fraction = '', offset = 'Z'] = match;
  const ms = Number(fraction.padEnd(3, '0').slice(0, 3));
  return fromParts(
    Number(y),
    Number(mo),
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    ms,
    offsetMinutes(offset),
  );
}

function offsetMinutes(offset: string): number {
  if (offset === 'Z' || offset === 'z') return 0;
  const sign = offset.startsWith('-') ? -1 : 1;
  const digits = offset.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
  if (hours > 23 || minutes > 59) return Number.NaN;
  return sign * (hours * 60 + minutes);
}

function fromParts(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
  offset: number,
): Date | undefined {
  if (Number.isNaN(offset) || year < YEAR_MIN || year > YEAR_MAX) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const local = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  const check = new Date(local);
  // Date.UTC rolls 2024-02-30 over into March; a real calendar date survives the round trip.
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day
  ) {
    return undefined;
  }
  return new Date(local - offset * 60_000);
}
