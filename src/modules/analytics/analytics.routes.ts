import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { sendTaggedBody } from '../../platform/envelopes.js';
import { errorResponses } from '../../platform/http-errors.js';
import {
  AnalyticsEnvelope,
  AnalyticsParams,
  AnalyticsQuery,
  RangeAnalyticsEnvelope,
  RangeQuery,
} from './analytics.schemas.js';
import { analyticsNotFound, type AnalyticsService } from './analytics.service.js';

const errors = errorResponses(404, 422, 503);
/** Another user's analytics, to a user token, look exactly like a user without any. */
const config = {
  access: { scope: 'analytics:read', owner: 'param:user_id' },
  notFound: (request: FastifyRequest) =>
    analyticsNotFound((request.params as { user_id: string }).user_id),
} as const;

export const analyticsRoutes: FastifyPluginAsyncTypebox<{ analytics: AnalyticsService }> = async (
  app,
  { analytics },
) => {
  app.get(
    '/api/v1/analytics/:user_id',
    {
      schema: {
        tags: ['analytics'],
        summary: "A user's all-time analytics in one currency",
        description:
          'Exact and current: rollups are updated in the same database transaction as every ' +
          'write. 404 when the user has no transactions in that currency.',
        params: AnalyticsParams,
        querystring: AnalyticsQuery,
        response: { 200: AnalyticsEnvelope, ...errors },
      },
      config,
    },
    // The finished body (see `analyticsBody`), often from the cache: sent as is, with its tag.
    async (request, reply) =>
      sendTaggedBody(reply, await analytics.allTime(request.params.user_id, request.query)),
  );

  app.get(
    '/api/v1/analytics/range/:user_id',
    {
      schema: {
        tags: ['analytics'],
        summary: "A user's analytics over a period",
        description:
          'Both bounds optional and inclusive; a date alone is its midnight in the analytics ' +
          'time zone. 404 when no transaction falls in the period.',
        params: AnalyticsParams,
        querystring: RangeQuery,
        response: { 200: RangeAnalyticsEnvelope, ...errors },
      },
      config,
    },
    async (request, reply) =>
      sendTaggedBody(reply, await analytics.range(request.params.user_id, request.query)),
  );
};
