/*
 * Every limit of the transactions module, each named with its unit (DESIGN.md 2.3, 2.4). The page
 * sizes of a history (PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX) are in src/domain/pagination.ts, because
 * config.ts checks the PAGE_SIZE_MAX setting against them; the length of a date as sent
 * (DATE_INPUT_LENGTH_MAX) is in src/domain/dates.ts, shared with analytics and the legacy import.
 */

/** A name, in characters after trimming. */
export const FULL_NAME_LENGTH_MAX = 200;
/** Raw input may carry surrounding spaces that are trimmed; this bounds what is read at all. */
export const FULL_NAME_INPUT_LENGTH_MAX = 1_000;
/** A description, in characters. */
export const DESCRIPTION_LENGTH_MAX = 500;
/** Keys of a transaction's metadata object. */
export const METADATA_KEYS_MAX = 20;
/** A metadata key, in characters. */
export const METADATA_KEY_LENGTH_MAX = 64;
/** A metadata value, in characters. */
export const METADATA_VALUE_LENGTH_MAX = 500;
/** An amount sent as a decimal string, in characters. */
export const AMOUNT_INPUT_LENGTH_MAX = 40;
/** A history cursor as sent, in characters (one we issue is about 70). */
export const CURSOR_LENGTH_MAX = 200;
/** An If-Match header, in characters. */
export const IF_MATCH_LENGTH_MAX = 1_024;
