/** Deliveries per page of `GET /api/v1/webhooks/{id}/deliveries`. */
export const DELIVERY_PAGE_SIZE_MAX = 100;
/** How long a rotated-out secret keeps signing, unless the request says otherwise. */
export const SECRET_OVERLAP_HOURS_DEFAULT = 24;
