import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import { finishDocument } from '../platform/openapi-document.js';

const API_VERSION = '0.1.0';
/** Swagger UI's page: its own scripts and styles only, and "Try it out" to this origin. */
const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; font-src 'self' data:; frame-ancestors 'none'; " +
  "img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; " +
  "style-src 'self' 'unsafe-inline'; connect-src 'self'";

/**
 * The OpenAPI document (built from every route's schema registered after it), Swagger UI at
 * /docs, the welcome route and /openapi.json. Opens nothing.
 */
export const openApiPlugin = fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Fido Transactions API',
          version: API_VERSION,
          description:
            "Record users' financial transactions and answer questions about them. Money is " +
            'exact (integer minor units), names are encrypted at rest, and writes are safe to ' +
            'retry with `Idempotency-Key`.\n\n' +
            'Patterns in this document mean the same with and without the regular-expression `u` ' +
            'flag; lengths count characters (code points), as JSON Schema does.',
          license: { name: 'MIT', identifier: 'MIT' },
        },
        servers: [{ url: '/', description: 'The server that serves this document' }],
        tags: [
          { name: 'transactions', description: 'Create, read, update and delete transactions' },
          { name: 'analytics', description: 'Per-user figures, exact the moment a write commits' },
          { name: 'events', description: 'The audit trail and pull-based change feed' },
          {
            name: 'webhooks',
            description: 'Signed, retried, inspectable push delivery of every committed change',
          },
          { name: 'api-keys', description: 'Service API keys (admin scope)' },
          { name: 'operations', description: 'Health, readiness and documentation' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              description:
                'A service API key (`fido_<id>_<secret>`, with scopes) or an end-user token (a ' +
                "JWT whose `sub` is a user_id: only that user's data). Each operation names the " +
                'scope it requires; `admin` holds every scope.',
            },
          },
        },
      },
      // Statuses, headers, shared components and portable patterns the route schemas cannot say.
      transformObject: (generated) =>
        'openapiObject' in generated
          ? (finishDocument(generated.openapiObject as Record<string, unknown>) as Partial<
              typeof generated.openapiObject
            >)
          : generated.swaggerObject,
    });
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      // Swagger UI needs its own scripts and styles (same origin, nothing inline); "Authorize"
      // keeps the token for the page's lifetime only.
      staticCSP: DOCS_CSP,
      uiConfig: { persistAuthorization: false },
    });

    app.get(
      '/',
      {
        schema: {
          tags: ['operations'],
          summary: 'Welcome',
          response: { 200: Type.Object({ message: Type.String() }) },
        },
        config: { access: 'public' },
      },
      async () => ({ message: 'Welcome to Fido Transactions API' }),
    );
    app.get('/openapi.json', { schema: { hide: true }, config: { access: 'public' } }, async () =>
      app.swagger(),
    );
  },
  { name: 'openapi', fastify: '5.x' },
);
