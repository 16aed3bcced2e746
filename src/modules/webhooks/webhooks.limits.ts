/* Every limit of the webhooks module, each named with its unit. */

/** A webhook's URL, in characters. */
export const URL_LENGTH_MAX = 2_048;
/** A webhook's description, in characters. */
export const DESCRIPTION_LENGTH_MAX = 500;
/** Deliveries per page of `GET /api/v1/webhooks/{id}/deliveries`. */
export const DELIVERY_PAGE_SIZE_DEFAULT = 20;
export const DELIVERY_PAGE_SIZE_MAX = 100;
/** How long a rotated-out secret keeps signing, unless the request says otherwise. */
export const SECRET_OVERLAP_HOURS_DEFAULT = 24;
/** The longest overlap a rotation may ask for (a week). */
export const SECRET_OVERLAP_HOURS_MAX = 24 * 7;
/** Bytes of a receiver's response body read (and thrown away) before the connection is cut. */
export const RESPONSE_READ_LIMIT_BYTES = 64 * 1024;
/** How long registration waits for a name to resolve before leaving the check to connect time. */
export const REGISTRATION_LOOKUP_TIMEOUT_MS = 2_000;
