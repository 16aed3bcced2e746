import type { FastifyInstance } from 'fastify';

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

/** JSON bodies through Fastify's own safe parser (prototype-poisoning checks), numbers kept exact. */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // The default parser is synchronous: it answers through `done`.
    void parseJson(request, quoteImpreciseNumbers(body as string), done);
  });
}
