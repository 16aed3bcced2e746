import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../../platform/http-errors.js';
import {
  CreateWebhookBody,
  DeliveriesQuery,
  DeliveryEnvelope,
  DeliveryListEnvelope,
  DeliveryParams,
  RotateSecretQuery,
  UpdateWebhookBody,
  WebhookDeletedEnvelope,
  WebhookEnvelope,
  WebhookIdParams,
  WebhookListEnvelope,
  WebhookWithSecretEnvelope,
} from './webhooks.schemas.js';
import { webhookView, type WebhooksService } from './webhooks.service.js';
import { DELIVERY_PAGE_SIZE_DEFAULT } from './webhooks.limits.js';

const TAGS = ['webhooks'];
/** Service keys only: a user token gets 404, as if these routes did not exist. */
const ACCESS = { scope: 'webhooks:manage' } as const;

export const webhooksRoutes: FastifyPluginAsyncTypebox<{ webhooks: WebhooksService }> = async (
  app,
  { webhooks },
) => {
  app.post(
    '/api/v1/webhooks',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'Register a webhook',
        description:
          'Answers the signing secret once. Deliveries are POSTed as JSON with the headers ' +
          '`Fido-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, ' +
          '`Fido-Event-Id`, `Fido-Event-Type` and `Fido-Delivery-Id`.',
        body: CreateWebhookBody,
        response: { 201: WebhookWithSecretEnvelope, ...errorResponses(409, 413, 415, 422, 503) },
      },
    },
    async (request, reply) => {
      const { webhook, secret } = await webhooks.create(request.body);
      // The secret is in this answer only: nothing between here and the caller may keep it.
      void reply
        .code(201)
        .header('location', `/api/v1/webhooks/${webhook.id}`)
        .header('cache-control', 'no-store');
      return {
        data: { ...webhookView(webhook), secret },
        code: 201,
        message: 'Webhook created; store the secret now, it is not shown again',
      };
    },
  );

  app.get(
    '/api/v1/webhooks',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'List webhooks',
        description: 'All of them: their number is bounded by WEBHOOK_MAX_ENDPOINTS.',
        response: { 200: WebhookListEnvelope, ...errorResponses(503) },
      },
    },
    async () => ({
      data: (await webhooks.list()).map(webhookView),
      code: 200,
      message: 'Webhooks retrieved successfully',
    }),
  );

  app.get(
    '/api/v1/webhooks/:id',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'Read a webhook',
        params: WebhookIdParams,
        response: { 200: WebhookEnvelope, ...errorResponses(404, 503) },
      },
    },
    async (request) => ({
      data: webhookView(await webhooks.get(request.params.id)),
      code: 200,
      message: 'Webhook retrieved successfully',
    }),
  );

  app.patch(
    '/api/v1/webhooks/:id',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'Change a webhook (url, event types, description, active)',
        params: WebhookIdParams,
        body: UpdateWebhookBody,
        response: { 200: WebhookEnvelope, ...errorResponses(404, 413, 415, 422, 503) },
      },
    },
    async (request) => ({
      data: webhookView(await webhooks.update(request.params.id, request.body)),
      code: 200,
      message: 'Webhook updated successfully',
    }),
  );

  app.delete(
    '/api/v1/webhooks/:id',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'Delete a webhook and its delivery log',
        params: WebhookIdParams,
        response: { 200: WebhookDeletedEnvelope, ...errorResponses(404, 503) },
      },
    },
    async (request) => {
      await webhooks.remove(request.params.id);
      return {
        data: `Webhook with ID: ${request.params.id} removed`,
        code: 200,
        message: 'Webhook deleted successfully',
      };
    },
  );

  app.post(
    '/api/v1/webhooks/:id/rotate-secret',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'Replace the signing secret',
        description:
          'Answers the new secret once. The previous one keeps signing (a second `v1` in ' +
          '`Fido-Signature`) until `previous_secret_expires_at`.',
        params: WebhookIdParams,
        querystring: RotateSecretQuery,
        response: { 200: WebhookWithSecretEnvelope, ...errorResponses(404, 422, 503) },
      },
    },
    async (request, reply) => {
      void reply.header('cache-control', 'no-store');
      const { webhook, secret } = await webhooks.rotateSecret(
        request.params.id,
        request.query.overlap_hours,
      );
      return {
        data: { ...webhookView(webhook), secret },
        code: 200,
        message: 'Secret rotated; store the new secret now, it is not shown again',
      };
    },
  );

  app.get(
    '/api/v1/webhooks/:id/deliveries',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: "A webhook's deliveries, newest first, with every attempt",
        params: WebhookIdParams,
        querystring: DeliveriesQuery,
        response: { 200: DeliveryListEnvelope, ...errorResponses(404, 422, 503) },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? DELIVERY_PAGE_SIZE_DEFAULT;
      const page = await webhooks.deliveries(request.params.id, { ...request.query, limit });
      return {
        data: page.rows,
        code: 200,
        message: 'Deliveries retrieved successfully',
        pagination: page.pagination,
      };
    },
  );

  app.get(
    '/api/v1/webhooks/:id/deliveries/:delivery_id',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'One delivery with every attempt',
        params: DeliveryParams,
        response: { 200: DeliveryEnvelope, ...errorResponses(404, 503) },
      },
    },
    async (request) => ({
      data: await webhooks.delivery(request.params.id, request.params.delivery_id),
      code: 200,
      message: 'Delivery retrieved successfully',
    }),
  );

  app.post(
    '/api/v1/webhooks/:id/deliveries/:delivery_id/redeliver',
    {
      config: { access: ACCESS },
      schema: {
        tags: TAGS,
        summary: 'Send a delivery again now',
        description:
          'One signed attempt, made during this request and logged as manual. Success marks ' +
          'the delivery succeeded (a dead one included); failure leaves its state as it was.',
        params: DeliveryParams,
        response: { 200: DeliveryEnvelope, ...errorResponses(404, 410, 503) },
      },
    },
    async (request) => ({
      data: await webhooks.redeliver(request.params.id, request.params.delivery_id),
      code: 200,
      message: 'Delivery attempted',
    }),
  );
};
