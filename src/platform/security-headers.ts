import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * Helmet's security headers on every answer. For this API they never depend on the request, so
 * they are worked out once, by running helmet's middleware against a recorder, and set from that
 * table: @fastify/helmet builds helmet's middleware anew on every request, which cost about 4% of
 * a read's CPU. Routes that need another policy (Swagger UI's /docs) overwrite the header later.
 */
export function installSecurityHeaders(app: FastifyInstance, options: HelmetOptions): void {
  const headers = securityHeaders(options);
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.headers(headers);
    done();
  });
}

/** The headers helmet's middleware sets with `options`, by lower-case name. */
export function securityHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  // Helmet 8 throws a bad option at once rather than passing it to `next`.
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, () => undefined);
  // Helmet joins directives with a bare `;`; written as documented (and as browsers show it).
  const policy = headers['content-security-policy'];
  if (policy !== undefined) headers['content-security-policy'] = policy.split(';').join('; ');
  return headers;
}
