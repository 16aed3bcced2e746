import type { FastifyReply } from 'fastify';
import { Type, type TSchema } from 'typebox';
import type { TaggedBody } from './http-cache.js';

/** The v1 envelope every successful answer comes in: `{ data, code, message }`. */
export const envelope = <T extends TSchema>(data: T, title: string) =>
  Type.Object({ data, code: Type.Integer(), message: Type.String() }, { title });

/** A page of a keyset-paginated list: the envelope plus `pagination`. */
export const pageEnvelope = <T extends TSchema>(
  item: T,
  title: string,
  cursorDescription?: string,
) =>
  Type.Object(
    {
      data: Type.Array(item),
      code: Type.Integer(),
      message: Type.String(),
      pagination: Type.Object({
        limit: Type.Integer(),
        next_cursor: Type.Union(
          [Type.String(), Type.Null()],
          cursorDescription === undefined ? {} : { description: cursorDescription },
        ),
        has_more: Type.Boolean(),
      }),
    },
    { title },
  );

/** Sends a body already serialized as JSON text, as is (past the route's serializer). */
export function sendJsonText(reply: FastifyReply, body: string | Buffer): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(body);
}

/**
 * Sends a finished body (often from the cache) as is, with the tag computed when it was rendered:
 * no serialisation and no hash of the body per request.
 */
export function sendTaggedBody(reply: FastifyReply, answer: TaggedBody): FastifyReply {
  return sendJsonText(reply.header('etag', answer.etag), answer.body);
}
