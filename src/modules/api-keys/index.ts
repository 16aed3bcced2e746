/*
 * The API keys module's public face: service keys with scopes, created by an admin (or the CLI),
 * checked on every request that presents one. Other code imports the module only from here.
 */
export { apiKeysRoutes } from './api-keys.routes.js';
export { newApiKeyFromBody, validateCreateApiKeyBody } from './api-keys.schemas.js';
export { API_KEY_LIFETIME_DAYS_MAX, API_KEY_NAME_LENGTH_MAX } from './api-keys.limits.js';
export {
  createApiKeysService,
  looksLikeApiKey,
  type ApiKeysService,
  type ApiKeyStatus,
  type NewApiKey,
} from './api-keys.service.js';
