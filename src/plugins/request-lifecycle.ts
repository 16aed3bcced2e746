import fp from 'fastify-plugin';
import { AppError } from '../platform/errors.js';
import { RETRY_AFTER_SECONDS } from '../platform/http-errors.js';
import { loggableUrl } from '../platform/logging.js';

/**
 * Every request's life: its id echoed in `x-request-id`, refused once shutting down, counted while
 * in flight, and on its way out one log line and one metrics observation. On close it waits for
 * the requests still running (up to `shutdownTimeoutMs`): registered after the database and Redis
 * plugins, its onClose runs before theirs, so a create still committing finds both open.
 */
export const requestLifecyclePlugin = fp<{ shutdownTimeoutMs: number }>(
  async (app, { shutdownTimeoutMs }) => {
    // The request line's fields are fixed and hold nothing to redact (the URL's query values are
    // redacted by loggableUrl): it skips the logger's redaction pass, which cost about as much as
    // the rest of the line. The request id is one of its fields instead of a child's binding.
    const requestLog = app.log.child({}, { redact: [] });
    let closing = false;
    let inFlight = 0;
    let drained: (() => void) | undefined;
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.addHook('onRequest', async (request, reply) => {
      void reply.header('x-request-id', request.id);
      if (closing) {
        // A request that arrives on a kept-alive connection while shutting down: send it elsewhere.
        void reply.header('connection', 'close').header('retry-after', String(RETRY_AFTER_SECONDS));
        throw new AppError('SERVICE_UNAVAILABLE', 'Service is shutting down, please retry');
      }
      inFlight += 1;
      reply.raw.once('close', () => {
        inFlight -= 1;
        if (inFlight === 0) drained?.();
      });
    });
    app.addHook('onClose', async () => {
      if (inFlight === 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, shutdownTimeoutMs);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    });
    app.addHook('onResponse', async (request, reply) => {
      app.metrics.httpRequests.observe(
        {
          method: request.method,
          // The pattern, not the URL: one series per route, not per user or id.
          route: request.routeOptions.url ?? 'unmatched',
          status: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      );
      requestLog.info(
        {
          request_id: request.id,
          method: request.method,
          // The query may carry a credential (`?access_token=`): its values are redacted.
          url: loggableUrl(request.url),
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
        },
        'request completed',
      );
    });
  },
  { name: 'request-lifecycle', fastify: '5.x', dependencies: ['metrics'] },
);
