import { parseInstant } from '../transactions/dates.js';

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Parses a range bound: a date alone means its midnight in `timeZone` (so a day-bounded range
 * matches the days analytics count in); a date-time is read as transactions' dates are.
 */
export function parseLocalInstant(text: string, timeZone: string): Date | undefined {
  const utc = parseInstant(text);
  if (!utc || !DATE_ONLY.test(text)) return utc;
  return new Date(
    utc.getTime() - offsetMs(utc.getTime() - offsetMs(utc.getTime(), timeZone), timeZone),
  );
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** How far `timeZone`'s wall clock is ahead of UTC at the instant `ms`. */
export function offsetMs(ms: number, timeZone: string): number {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(
    format.formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]),
  ) as Record<string, number>;
  const wall = Date.UTC(
    parts.year ?? 0,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  );
  return wall - (ms - (((ms % 1000) + 1000) % 1000));
}
