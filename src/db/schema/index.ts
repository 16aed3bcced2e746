export * from './transactions.js';
export * from './events.js';
export * from './idempotency-keys.js';
