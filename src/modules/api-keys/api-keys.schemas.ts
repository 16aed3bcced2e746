import { Type, type Static } from 'typebox';
import { envelope, pageEnvelope } from '../../platform/envelopes.js';
import { bodyValidator } from '../../platform/validation.js';
import { SCOPES } from '../../platform/auth.js';
import {
  PRINTABLE_ASCII,
  PRINTABLE_ASCII_MESSAGE,
  PRINTABLE_TEXT,
  PRINTABLE_TEXT_MESSAGE,
} from '../../domain/text.js';
import type { NewApiKey } from './api-keys.service.js';
import {
  API_KEY_ID_LENGTH_MAX,
  API_KEY_LIFETIME_DAYS_MAX,
  API_KEY_NAME_LENGTH_MAX,
  API_KEYS_PAGE_SIZE_DEFAULT,
  API_KEYS_PAGE_SIZE_MAX,
} from './api-keys.limits.js';

const ScopeSchema = Type.Enum([...SCOPES], {
  description:
    '`transactions:read`, `transactions:write`, `analytics:read`, `webhooks:manage`, or `admin` ' +
    '(every scope, and managing API keys).',
});

export const CreateApiKeyBody = Type.Object({
  name: Type.String({
    minLength: 1,
    maxLength: API_KEY_NAME_LENGTH_MAX,
    pattern: PRINTABLE_TEXT,
    'x-error-message': PRINTABLE_TEXT_MESSAGE,
    description: 'What the key is for, e.g. `billing-service`. Not secret, not unique.',
    examples: ['billing-service'],
  }),
  scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: SCOPES.length, uniqueItems: true }),
  expires_in_days: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: API_KEY_LIFETIME_DAYS_MAX,
      description: `Days until the key stops working (1–${API_KEY_LIFETIME_DAYS_MAX}); omit for no expiry.`,
    }),
  ),
});
export type CreateApiKeyBody = Static<typeof CreateApiKeyBody>;

/**
 * The route's own check of a `POST /api/v1/api-keys` body, for `cli keys create`: one set of rules
 * (no trimming, lengths in code points, no unpaired surrogates, no repeated scope) for both.
 */
export const validateCreateApiKeyBody = bodyValidator(CreateApiKeyBody);

const DAY_MS = 86_400_000;

/** What a valid body asks for, with its lifetime counted from `now`. */
export function newApiKeyFromBody(body: CreateApiKeyBody, now = new Date()): NewApiKey {
  const days = body.expires_in_days;
  return {
    name: body.name,
    scopes: body.scopes,
    expiresAt: days === undefined ? null : new Date(now.getTime() + days * DAY_MS),
  };
}

export const ApiKey = Type.Object(
  {
    id: Type.String({ description: 'The key id: the part after `fido_` in the key itself.' }),
    name: Type.String(),
    scopes: Type.Array(ScopeSchema),
    status: Type.Enum(['active', 'revoked', 'expired']),
    created_at: Type.String({ format: 'date-time' }),
    expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    last_used_at: Type.Union([
      Type.String({
        format: 'date-time',
        description: 'Updated at most once a minute per process.',
      }),
      Type.Null(),
    ]),
  },
  { title: 'ApiKey' },
);
export type ApiKey = Static<typeof ApiKey>;

export const CreatedApiKey = Type.Object(
  {
    ...ApiKey.properties,
    key: Type.String({
      description:
        'The key, `fido_<id>_<secret>`. Shown this once: only its hash is stored. Send it as ' +
        '`Authorization: Bearer <key>`.',
    }),
  },
  { title: 'CreatedApiKey' },
);

/** Key ids and cursors are printable ASCII: anything else (a NUL) is refused here, not in SQL. */
const KEY_ID_TEXT = { pattern: PRINTABLE_ASCII, 'x-error-message': PRINTABLE_ASCII_MESSAGE };

export const ApiKeyIdParams = Type.Object({
  id: Type.String({ maxLength: API_KEY_ID_LENGTH_MAX, ...KEY_ID_TEXT }),
});

export const ListApiKeysQuery = Type.Object({
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: API_KEYS_PAGE_SIZE_MAX,
      default: API_KEYS_PAGE_SIZE_DEFAULT,
      description: `Page size, 1–${API_KEYS_PAGE_SIZE_MAX} (default ${API_KEYS_PAGE_SIZE_DEFAULT}).`,
    }),
  ),
  cursor: Type.Optional(
    Type.String({
      maxLength: API_KEY_ID_LENGTH_MAX,
      ...KEY_ID_TEXT,
      description: 'The `next_cursor` of the previous page.',
    }),
  ),
});

export const ApiKeyEnvelope = envelope(ApiKey, 'ApiKeyResponse');
export const CreatedApiKeyEnvelope = envelope(CreatedApiKey, 'CreatedApiKeyResponse');
export const ApiKeyListEnvelope = pageEnvelope(ApiKey, 'ApiKeyListResponse');
