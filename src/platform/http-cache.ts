import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

/**
 * Conditional GETs: every successful GET carries an ETag (the route's own, such as a record's
 * version, or a hash of the body), and `If-None-Match` with a matching tag answers 304 with no
 * body. Weak comparison, as RFC 9110 13.1.2 prescribes for If-None-Match.
 */
export function installConditionalGets(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return payload;
    if (reply.statusCode !== 200) return payload;
    let etag = reply.getHeader('etag');
    if (etag === undefined) {
      if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
      etag = weakEtag(payload);
      void reply.header('etag', etag);
    }
    const condition = request.headers['if-none-match'];
    if (condition !== undefined && matches(condition, String(etag))) {
      void reply.code(304);
      return '';
    }
    return payload;
  });
}

/**
 * The ETag a GET without one of its own gets: a hash of its body. A route whose body is stored
 * (a cached history page) keeps the tag with it and sets it, so the body is not hashed per request.
 */
export function weakEtag(body: string | Buffer): string {
  return `W/"${createHash('sha1').update(body).digest('base64url')}"`;
}

function opaque(tag: string): string {
  return tag.trim().replace(/^W\//, '');
}

function matches(condition: string, etag: string): boolean {
  if (condition.trim() === '*') return true;
  const current = opaque(etag);
  return condition.split(',').some((tag) => opaque(tag) === current);
}
