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

/** A response body and its entity tag, as one cached value. */
export interface TaggedBody {
  /** The v1 response body, JSON text as bytes (sent as they are). */
  body: Buffer;
  /** Its entity tag (`weakEtag` of the body). */
  etag: string;
}

/** A body rendered now, with its tag. */
export function taggedBody(body: string): TaggedBody {
  return { body: Buffer.from(body, 'utf8'), etag: weakEtag(body) };
}

/** The tag and the body as one value: the tag, a line break (a tag never holds one), the body. */
export function packTaggedBody(body: string): Buffer {
  return Buffer.from(`${weakEtag(body)}\n${body}`, 'utf8');
}

/**
 * `packTaggedBody`'s value read back; undefined when it is not one (no weak tag, then a line
 * break). The body is a view of the value's bytes, not a copy.
 */
export function unpackTaggedBody(value: Buffer): TaggedBody | undefined {
  const end = value.indexOf(0x0a);
  // W/"…" then the line break: 0x57 0x2f 0x22 … 0x22.
  if (end < 4 || value[0] !== 0x57 || value[1] !== 0x2f || value[2] !== 0x22) return undefined;
  if (value[end - 1] !== 0x22) return undefined;
  return { etag: value.toString('latin1', 0, end), body: value.subarray(end + 1) };
}
