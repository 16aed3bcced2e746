/*
 * Text the service stores and shows. Patterns are JSON Schema (and OpenAPI) patterns, written so
 * they mean the same with and without the regular-expression `u` flag.
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

const PRINTABLE = new RegExp(PRINTABLE_TEXT, 'u');

/** The same rule as PRINTABLE_TEXT, for code that checks text outside a schema. */
export function isPrintableText(text: string): boolean {
  return PRINTABLE.test(text);
}
