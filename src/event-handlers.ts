import type { EventHandler } from './modules/events/index.js';

/**
 * Your in-process consumers of committed events: the place to wire what runs on every change
 * (statistics side effects, alerts, a credit-score recalculation). Both `npm start` and
 * `npm run worker` pass this list to the app, so a handler runs wherever the worker runs.
 * See docs/events.md, "In-process handlers", for the guarantees and an example.
 */
export const eventHandlers: readonly EventHandler[] = [];
