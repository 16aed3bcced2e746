import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { AppError, validationError, type ValidationIssue } from './errors.js';

/** Decimal digits a double always holds exactly (DBL_DIG): more may be rounded away. */
const EXACT_DIGITS_MAX = 15;
/** A run of 16 or more number characters: the only text that can hold an imprecise number. */
const LONG_NUMBER_HINT = /[0-9][0-9.eE+-]{15,}/;

/**
 * JSON.parse rounds a number with more significant digits than a double holds, and the caller
 * would never know: `100.100000000000000000001` would be recorded as 100.1. Number literals with
 * more than EXACT_DIGITS_MAX significant digits are turned into strings before parsing, so
 * they reach validation as the exact text the client sent (and are refused there).
 */
export function quoteImpreciseNumbers(text: string): string {
  if (!LONG_NUMBER_HINT.test(text)) return text;
  let out = '';
  let copiedUpTo = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string, honouring escapes.
      for (i += 1; i < text.length && text.charCodeAt(i) !== 0x22; i += 1) {
        if (text.charCodeAt(i) === 0x5c /* \ */) i += 1;
      }
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && /[0-9.eE+-]/.test(text[end]!)) end += 1;
      const literal = text.slice(i, end);
      if (significantDigits(literal) > EXACT_DIGITS_MAX) {
        out += `${text.slice(copiedUpTo, i)}"${literal}"`;
        copiedUpTo = end;
      }
      i = end - 1;
    }
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

function significantDigits(literal: string): number {
  const mantissa = literal.replace(/^-/, '').split(/[eE]/)[0] ?? '';
  const digits = mantissa.replace('.', '').replace(/^0+/, '');
  // Trailing zeros of a fraction are not significant; of an integer they are (100 vs 1e2).
  const trimmed = mantissa.includes('.') ? digits.replace(/0+$/, '') : digits;
  return trimmed.length;
}

/**
 * Nesting a JSON body may have. The deepest body of the contract is 3 levels; anything deeper is
 * refused before parsing, so no recursive walk (validation, the idempotency fingerprint, the
 * database's JSON functions) ever meets a body deep enough to exhaust a stack.
 */
export const JSON_DEPTH_MAX = 32;

/** The deepest nesting of arrays and objects in `text`, counted without recursion. */
export function jsonDepth(text: string, stopAbove = Infinity): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i += 1; i < text.length && text.charCodeAt(i) !== 0x22; i += 1) {
        if (text.charCodeAt(i) === 0x5c /* \ */) i += 1;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth += 1;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > stopAbove) return deepest;
      }
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth -= 1;
    }
  }
  return deepest;
}

const REPLACEMENT_CHARACTER = '\ufffd';

/**
 * Where a body that is not valid UTF-8 holds its bad bytes: every key and string value that
 * decoded to U+FFFD. Only called on a body already known to be too shallow to hurt.
 */
function undecodableFields(value: unknown, path: (string | number)[] = []): ValidationIssue[] {
  const issue = (loc: (string | number)[]): ValidationIssue => ({
    loc: ['body', ...loc],
    msg: 'String should be valid UTF-8',
    type: 'unicode_decode_error',
  });
  if (typeof value === 'string') return value.includes(REPLACEMENT_CHARACTER) ? [issue(path)] : [];
  if (Array.isArray(value))
    return value.flatMap((item, i) => undecodableFields(item, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).flatMap(([key, item]) => [
      ...(key.includes(REPLACEMENT_CHARACTER) ? [issue([...path, key])] : []),
      ...undecodableFields(item, [...path, key]),
    ]);
  }
  return [];
}

function tooDeep(): AppError {
  return new AppError(
    'MALFORMED_JSON',
    `Request body is nested deeper than ${JSON_DEPTH_MAX} levels`,
    [
      {
        loc: ['body'],
        msg: `JSON should be nested at most ${JSON_DEPTH_MAX} levels deep`,
        type: 'json_too_deep',
      },
    ],
  );
}

/**
 * JSON bodies through Fastify's own safe parser (prototype-poisoning checks), numbers kept exact,
 * nesting bounded, and bytes that are not UTF-8 refused (naming the field) rather than stored as
 * U+FFFD.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    const text = bytes.toString('utf8');
    if (jsonDepth(text, JSON_DEPTH_MAX) > JSON_DEPTH_MAX) {
      done(tooDeep(), undefined);
      return;
    }
    if (!isUtf8(bytes)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON either: the parser below says so.
        void parseJson(request, text, done);
        return;
      }
      const issues = undecodableFields(parsed);
      done(
        validationError(
          issues.length > 0
            ? issues
            : [{ loc: ['body'], msg: 'Body should be valid UTF-8', type: 'unicode_decode_error' }],
        ),
        undefined,
      );
      return;
    }
    // The default parser is synchronous: it answers through `done`.
    void parseJson(request, quoteImpreciseNumbers(text), done);
  });
}
