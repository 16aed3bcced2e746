import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/client.js';
import { ownerOf } from '../../platform/auth.js';
import { keysetPage } from '../../domain/pagination.js';
import { AppError, invalidCursor, validationError } from '../../platform/errors.js';
import { errorResponses } from '../../platform/http-errors.js';
import { EVENT_PAGE_SIZE_DEFAULT } from './events.limits.js';
import { EventsEnvelope, EventsQuery } from './events.schemas.js';
import { readFeed } from './events.repository.js';
import { decodeFeedCursor, encodeFeedCursor } from './feed.js';

export const eventsRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.get(
    '/api/v1/events',
    {
      // User tokens read their own user's events only.
      config: { access: { scope: 'transactions:read', owner: 'record' } },
      schema: {
        tags: ['events'],
        summary: 'The event feed: every committed change, in commit-safe order',
        description:
          'The audit trail and a pull-based change feed. Each event appears exactly once across ' +
          'pages: an event is served only once every transaction that started before it has ' +
          'ended, so none can later appear behind your cursor. Payloads never carry names.',
        querystring: EventsQuery,
        response: { 200: EventsEnvelope, ...errorResponses(404, 422, 503) },
      },
    },
    async (request) => {
      const { after: cursor, type } = request.query;
      const owner = ownerOf(request);
      if (
        owner !== undefined &&
        request.query.user_id !== undefined &&
        request.query.user_id !== owner
      ) {
        throw new AppError('USER_NOT_FOUND', `User ID ${request.query.user_id} not found`);
      }
      const userId = owner ?? request.query.user_id;
      const limit = request.query.limit ?? EVENT_PAGE_SIZE_DEFAULT;
      const after = cursor === undefined ? undefined : decodeFeedCursor(cursor);
      if (cursor !== undefined && !after) throw validationError([invalidCursor('after')]);
      const entries = await readFeed(db, { after, userId, type, limit: limit + 1 });
      // A feed is polled: its next cursor is where to ask again, even at the end.
      const page = keysetPage(entries, limit, (entry) => encodeFeedCursor(entry.position), {
        after: cursor,
      });
      return {
        data: page.items.map((entry) => entry.event),
        code: 200,
        message: 'Events retrieved successfully',
        pagination: page.pagination,
      };
    },
  );
};
