/*
 * The webhooks module's public face: endpoints that receive every committed event, signed and
 * retried, with an inspectable delivery log. Other code imports the module only from here.
 */
export { webhooksRoutes } from './webhooks.routes.js';
export { createWebhooksService, type WebhooksService } from './webhooks.service.js';
