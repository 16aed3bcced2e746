/*
 * Text the service stores and shows: the one source of each text rule. Patterns are JSON Schema
 * (and OpenAPI) patterns, written so they mean the same with and without the regular-expression
 * `u` flag; the functions apply the same rules to text checked outside a schema (the legacy
 * import, JWT subjects).
 */

/**
 * PostgreSQL text cannot hold NUL, and an unpaired surrogate cannot be encoded as UTF-8: both
 * would fail at the database (a 500) instead of at validation (a 422 naming the field).
 */
export const STORABLE_TEXT = '^[^\\u0000\\p{Cs}]*$';
export const STORABLE_TEXT_MESSAGE =
  'String should not contain NUL characters or unpaired surrogates';

/** Names, ids and labels: storable, and no control characters either (they reach logs). */
export const PRINTABLE_TEXT = '^[^\\p{Cc}\\p{Cs}]*$';
export const PRINTABLE_TEXT_MESSAGE = 'String should not contain control characters';

/**
 * Machine tokens we issue or compare byte for byte (API key ids, cursors): printable ASCII, no
 * space. Narrower than printable text, because nothing but ASCII can be one.
 */
export const PRINTABLE_ASCII = '^[\\x21-\\x7e]*$';
export const PRINTABLE_ASCII_MESSAGE = 'String should hold printable ASCII characters only';

/** `Idempotency-Key` values: printable ASCII, bounded so they index and log safely. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7e]{1,255}$';

const STORABLE = new RegExp(STORABLE_TEXT, 'u');
const PRINTABLE = new RegExp(PRINTABLE_TEXT, 'u');

/** The same rule as STORABLE_TEXT, for code that checks text outside a schema. */
export function isStorableText(text: string): boolean {
  return STORABLE.test(text);
}

/** The same rule as PRINTABLE_TEXT, for code that checks text outside a schema. */
export function isPrintableText(text: string): boolean {
  return PRINTABLE.test(text);
}

/**
 * A string's length as the schemas count it (`minLength`/`maxLength`): in code points, as Ajv
 * does, so an emoji is one character, not two UTF-16 units.
 */
export function textLength(text: string): number {
  return Array.from(text).length;
}
