import { Type, type Static } from 'typebox';
import { DELIVERY_STATES, EVENT_TYPES } from '../../db/schema/index.js';
import { INT64_DIGITS_PATTERN } from '../../domain/cursor.js';
import { STORABLE_TEXT, STORABLE_TEXT_MESSAGE } from '../../domain/text.js';
import { envelope, pageEnvelope } from '../../platform/envelopes.js';
import {
  DELIVERY_PAGE_SIZE_DEFAULT,
  DELIVERY_PAGE_SIZE_MAX,
  DESCRIPTION_LENGTH_MAX,
  SECRET_OVERLAP_HOURS_MAX,
  URL_LENGTH_MAX,
} from './webhooks.limits.js';

const EventTypes = Type.Array(Type.Enum([...EVENT_TYPES]), {
  maxItems: EVENT_TYPES.length * 2,
  description: 'Event types to deliver; empty or omitted means every type.',
});
const Url = Type.String({
  minLength: 1,
  maxLength: URL_LENGTH_MAX,
  description: 'Where deliveries are POSTed: an absolute http or https URL.',
  examples: ['https://example.com/hooks/fido'],
});
// PostgreSQL text holds no NUL and no unpaired surrogate: refused here (422), not there (500).
const Description = Type.Union([
  Type.String({
    maxLength: DESCRIPTION_LENGTH_MAX,
    pattern: STORABLE_TEXT,
    'x-error-message': STORABLE_TEXT_MESSAGE,
  }),
  Type.Null(),
]);

export const CreateWebhookBody = Type.Object(
  {
    url: Url,
    description: Type.Optional(Description),
    event_types: Type.Optional(EventTypes),
    active: Type.Optional(Type.Boolean({ default: true })),
  },
  { additionalProperties: false },
);
export type CreateWebhookBody = Static<typeof CreateWebhookBody>;

export const UpdateWebhookBody = Type.Object(
  {
    url: Type.Optional(Url),
    description: Type.Optional(Description),
    event_types: Type.Optional(EventTypes),
    active: Type.Optional(
      Type.Boolean({
        description: 'An inactive webhook is queued no new events; what was queued waits.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type UpdateWebhookBody = Static<typeof UpdateWebhookBody>;

export const RotateSecretQuery = Type.Object({
  overlap_hours: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: SECRET_OVERLAP_HOURS_MAX,
      description:
        'How long the previous secret keeps signing alongside the new one (default 24; 0 ends it now).',
    }),
  ),
});

export const WebhookIdParams = Type.Object({ id: Type.String({ description: 'The webhook id.' }) });
export const DeliveryParams = Type.Object({
  id: Type.String({ description: 'The webhook id.' }),
  delivery_id: Type.String({ description: 'The delivery id.' }),
});

export const DeliveriesQuery = Type.Object({
  state: Type.Optional(Type.Enum([...DELIVERY_STATES])),
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: DELIVERY_PAGE_SIZE_MAX,
      default: DELIVERY_PAGE_SIZE_DEFAULT,
    }),
  ),
  cursor: Type.Optional(
    Type.String({
      pattern: INT64_DIGITS_PATTERN,
      'x-error-message': 'Invalid cursor',
      description: 'The `next_cursor` of the previous page.',
    }),
  ),
});

const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const Webhook = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    url: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    event_types: Type.Array(Type.String()),
    active: Type.Boolean(),
    previous_secret_expires_at: NullableTimestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { title: 'Webhook' },
);

export const WebhookWithSecret = Type.Object(
  {
    ...Webhook.properties,
    secret: Type.String({
      description:
        'The signing secret, shown only in this response: store it now. Verify deliveries with ' +
        'HMAC-SHA256(secret, "<t>.<raw body>") against each `v1` of the Fido-Signature header.',
    }),
  },
  { title: 'WebhookWithSecret' },
);

const Attempt = Type.Object({
  attempted_at: Timestamp,
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  latency_ms: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  manual: Type.Boolean(),
});

export const Delivery = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    webhook_id: Type.String({ format: 'uuid' }),
    event_id: Type.String({ format: 'uuid' }),
    event_type: Type.String(),
    user_id: Type.String(),
    state: Type.Enum([...DELIVERY_STATES]),
    attempt_count: Type.Integer(),
    next_attempt_at: NullableTimestamp,
    retry_until: NullableTimestamp,
    last_status: Type.Union([Type.Integer(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    created_at: Timestamp,
    completed_at: NullableTimestamp,
    attempts: Type.Array(Attempt),
  },
  { title: 'Delivery' },
);

export const WebhookEnvelope = envelope(Webhook, 'WebhookResponse');
export const WebhookWithSecretEnvelope = envelope(WebhookWithSecret, 'WebhookCreatedResponse');
export const WebhookListEnvelope = envelope(Type.Array(Webhook), 'WebhookListResponse');
export const WebhookDeletedEnvelope = envelope(Type.String(), 'WebhookDeletedResponse');
export const DeliveryEnvelope = envelope(Delivery, 'DeliveryResponse');
export const DeliveryListEnvelope = pageEnvelope(Delivery, 'DeliveryListResponse');
