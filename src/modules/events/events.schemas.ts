import { Type, type Static } from 'typebox';
import { EVENT_TYPES } from '../../db/schema/index.js';
import { UserId } from '../../domain/ids.js';
import { pageEnvelope } from '../../platform/envelopes.js';
import {
  EVENT_CURSOR_LENGTH_MAX,
  EVENT_PAGE_SIZE_DEFAULT,
  EVENT_PAGE_SIZE_MAX,
} from './events.limits.js';

export const EventsQuery = Type.Object({
  after: Type.Optional(
    Type.String({
      maxLength: EVENT_CURSOR_LENGTH_MAX,
      description: 'The `next_cursor` of the previous page; omit to start from the oldest event.',
    }),
  ),
  user_id: Type.Optional(UserId),
  type: Type.Optional(Type.Enum([...EVENT_TYPES])),
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: EVENT_PAGE_SIZE_MAX,
      default: EVENT_PAGE_SIZE_DEFAULT,
      description: `Page size, 1–${EVENT_PAGE_SIZE_MAX} (default ${EVENT_PAGE_SIZE_DEFAULT}).`,
    }),
  ),
});
export type EventsQuery = Static<typeof EventsQuery>;

export const Event = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Stable across redeliveries: dedupe on it.' }),
    type: Type.Enum([...EVENT_TYPES]),
    user_id: Type.String(),
    transaction_id: Type.String({ format: 'uuid' }),
    created_at: Type.String({ format: 'date-time' }),
    data: Type.Object(
      {
        transaction: Type.Record(Type.String(), Type.Unknown(), {
          description:
            'The transaction after the change (before it, for a deletion), without its name.',
        }),
        previous: Type.Optional(
          Type.Record(Type.String(), Type.Unknown(), {
            description: 'For an update: the transaction before it.',
          }),
        ),
      },
      { additionalProperties: true },
    ),
  },
  { title: 'Event' },
);

export const EventsEnvelope = pageEnvelope(
  Event,
  'EventsResponse',
  'Pass as `after` to continue; present even on a short page, so a poller can resume ' +
    'from it. Null only when nothing has been served yet.',
);
