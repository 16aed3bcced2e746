import type { Static } from 'typebox';
import type { AnalyticsEnvelope, RangeAnalyticsEnvelope } from './analytics.schemas.js';

/**
 * An analytics answer's v1 response body, as text: what the cache keeps and the route sends as is.
 * `data`'s fields are in the schema's order (see `present`), so the text is the one the route's
 * serializer wrote when it serialized the object.
 */
export function analyticsBody(
  data: Static<typeof AnalyticsEnvelope>['data'] | Static<typeof RangeAnalyticsEnvelope>['data'],
): string {
  return JSON.stringify({
    data,
    code: 200,
    message: 'Transaction analytics retrieved successfully',
  });
}
