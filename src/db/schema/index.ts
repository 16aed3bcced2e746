export * from './transactions.js';
export * from './events.js';
export * from './idempotency-keys.js';
export * from './analytics.js';
export * from './webhooks.js';
export * from './access.js';
