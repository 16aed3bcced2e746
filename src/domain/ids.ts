import { Type } from 'typebox';
import { PRINTABLE_TEXT, PRINTABLE_TEXT_MESSAGE } from './text.js';

/** Limits of the v1 contract (DESIGN.md 2.3), in characters. */
export const USER_ID_LENGTH_MAX = 128;

/** A user id: whoever owns transactions, events and analytics. */
export const UserId = Type.String({
  minLength: 1,
  maxLength: USER_ID_LENGTH_MAX,
  pattern: PRINTABLE_TEXT,
  'x-error-message': PRINTABLE_TEXT_MESSAGE,
  description: 'The owner of the transaction: 1–128 characters, no control characters.',
  examples: ['user-123'],
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A UUID as the service writes it (lower-case), e.g. inside a cursor it issued. */
export function isCanonicalUuid(value: string): boolean {
  return UUID.test(value);
}

/** Record ids are UUIDs (v7, written lower-case); any case is accepted on input. */
export function isUuid(value: string): boolean {
  return UUID.test(value.toLowerCase());
}
