/* Every limit of the API keys module, each named with its unit. */

/** A key's name, in characters (code points). */
export const API_KEY_NAME_LENGTH_MAX = 100;
/** The longest a key may live (10 years): a key that never expires is still allowed. */
export const API_KEY_LIFETIME_DAYS_MAX = 3_650;
/** Keys per page of `GET /api/v1/api-keys`. */
export const API_KEYS_PAGE_SIZE_DEFAULT = 100;
export const API_KEYS_PAGE_SIZE_MAX = 500;
/** A key id or a cursor as sent, in characters (one we issue is 16). */
export const API_KEY_ID_LENGTH_MAX = 64;
/** How long a verified key row is trusted before it is read again (revocation on other replicas). */
export const API_KEY_CACHE_TTL_MS = 5_000;
/** Verified keys (and last-use times) a process remembers. */
export const API_KEY_CACHE_ENTRIES_MAX = 10_000;
/** `last_used_at` is written at most this often per key: a write per request would be costly. */
export const LAST_USED_RESOLUTION_MS = 60_000;
