import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { cursorCodec, cursorFields } from '../../domain/cursor.js';
import { keysetPage } from '../../domain/pagination.js';
import { errorResponses } from '../../platform/http-errors.js';
import type { ApiKeyRow } from './api-keys.repository.js';
import {
  ApiKeyEnvelope,
  ApiKeyIdParams,
  ApiKeyListEnvelope,
  CreateApiKeyBody,
  CreatedApiKeyEnvelope,
  ListApiKeysQuery,
  newApiKeyFromBody,
  type ApiKey,
} from './api-keys.schemas.js';
import type { ApiKeysService } from './api-keys.service.js';
import { API_KEYS_PAGE_SIZE_DEFAULT } from './api-keys.limits.js';

/**
 * API-key cursors: the last served key's id, as it is (src/domain/cursor.ts); the list is ordered
 * by creation, and the repository finds the id's place in that order.
 */
const apiKeysCursor = cursorCodec<{ id: string }>({ id: cursorFields.text }, { armour: 'none' });

const TAGS = ['api-keys'];
const ACCESS = { access: { scope: 'admin' as const } };

/** Managing service API keys: admin only; user tokens never see these routes. */
export const apiKeysRoutes: FastifyPluginAsyncTypebox<{ apiKeys: ApiKeysService }> = async (
  app,
  { apiKeys },
) => {
  const view = (row: ApiKeyRow): ApiKey => ({
    id: row.id,
    name: row.name,
    scopes: row.scopes as ApiKey['scopes'],
    status: apiKeys.statusOf(row),
    created_at: row.createdAt.toISOString(),
    expires_at: row.expiresAt?.toISOString() ?? null,
    revoked_at: row.revokedAt?.toISOString() ?? null,
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
  });

  app.post(
    '/api/v1/api-keys',
    {
      schema: {
        tags: TAGS,
        summary: 'Create an API key (the key is in this answer only)',
        body: CreateApiKeyBody,
        response: { 201: CreatedApiKeyEnvelope, ...errorResponses(413, 415, 422, 503) },
      },
      config: ACCESS,
    },
    async (request, reply) => {
      const { row, key } = await apiKeys.create(newApiKeyFromBody(request.body));
      // Never cached by anything between here and the caller.
      void reply.code(201).header('cache-control', 'no-store');
      return { data: { ...view(row), key }, code: 201, message: 'API key created' };
    },
  );

  app.get(
    '/api/v1/api-keys',
    {
      schema: {
        tags: TAGS,
        summary: 'List API keys (never their secrets)',
        querystring: ListApiKeysQuery,
        response: { 200: ApiKeyListEnvelope, ...errorResponses(422, 503) },
      },
      config: ACCESS,
    },
    async (request) => {
      const limit = request.query.limit ?? API_KEYS_PAGE_SIZE_DEFAULT;
      const cursor = request.query.cursor;
      const after = cursor === undefined ? undefined : apiKeysCursor.decode(cursor)?.id;
      const rows = await apiKeys.list(after, limit + 1);
      const page = keysetPage(rows, limit, apiKeysCursor.encode);
      return {
        data: page.items.map(view),
        code: 200,
        message: 'API keys retrieved successfully',
        pagination: page.pagination,
      };
    },
  );

  app.get(
    '/api/v1/api-keys/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Read one API key',
        params: ApiKeyIdParams,
        response: { 200: ApiKeyEnvelope, ...errorResponses(404, 503) },
      },
      config: ACCESS,
    },
    async (request) => ({
      data: view(await apiKeys.get(request.params.id)),
      code: 200,
      message: 'API key retrieved successfully',
    }),
  );

  app.delete(
    '/api/v1/api-keys/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Revoke an API key (at once in this process, within 5 s everywhere)',
        params: ApiKeyIdParams,
        response: { 200: ApiKeyEnvelope, ...errorResponses(404, 503) },
      },
      config: ACCESS,
    },
    async (request) => ({
      data: view(await apiKeys.revoke(request.params.id)),
      code: 200,
      message: 'API key revoked',
    }),
  );
};
