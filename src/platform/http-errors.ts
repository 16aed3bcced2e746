import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import { Type, type Static } from 'typebox';
import {
  AppError,
  CommitOutcomeUnknown,
  ERROR_STATUS,
  isDatabaseUnavailable,
  validationError,
  type ErrorCode,
  type ValidationIssue,
} from './errors.js';
import { toValidationIssues } from './validation.js';

/** Every error the API returns, whatever the status. */
export const ErrorBody = Type.Object(
  {
    message: Type.String(),
    name: Type.Literal('FidoTransactionsAPI'),
    code: Type.String({ description: 'Stable machine-readable code, e.g. TRANSACTION_NOT_FOUND' }),
    request_id: Type.String(),
    detail: Type.Optional(
      Type.Array(
        Type.Object({
          loc: Type.Array(Type.Union([Type.String(), Type.Integer()])),
          msg: Type.String(),
          type: Type.String(),
        }),
        { description: 'Validation problems (422 only), one per offending field' },
      ),
    ),
  },
  { title: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

/** A route's error responses: the one error shape, under each status it may answer with. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorBody]));
}

/** Seconds a client should wait before retrying when a dependency is down. */
export const RETRY_AFTER_SECONDS = 2;
export const DEFAULT_UNAVAILABLE_MESSAGE = 'Service is unavailable, please try again later';
export const WRITE_OUTCOME_UNKNOWN_MESSAGE =
  'The database did not confirm the write: it may or may not have been applied. Retry with the ' +
  'same Idempotency-Key to get its outcome, or read the record before writing again';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The 503 message this route answers with when the database is down (old-service text). */
    unavailableMessage?: string;
  }
}

export function errorBody(
  request: FastifyRequest,
  code: ErrorCode,
  message: string,
  detail?: ValidationIssue[],
): ErrorBody {
  return {
    message,
    name: 'FidoTransactionsAPI',
    code,
    request_id: request.id,
    ...(detail ? { detail } : {}),
  };
}

function send(
  request: FastifyRequest,
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  detail?: ValidationIssue[],
): FastifyReply {
  return reply
    .code(ERROR_STATUS[code])
    .type('application/json; charset=utf-8')
    .send(errorBody(request, code, message, detail));
}

/** Maps Fastify's own errors (parsing, limits, validation) to the catalogue. */
function fromFastifyError(error: FastifyError): AppError | undefined {
  if (error.validation) {
    return validationError(toValidationIssues(error.validation, error.validationContext));
  }
  switch (error.code) {
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('VALIDATION_FAILED', 'Request body is required', [
        { loc: ['body'], msg: 'Field required', type: 'missing' },
      ]);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return malformedJson(error);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', 'Request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError(
        'UNSUPPORTED_MEDIA_TYPE',
        'Unsupported content type: send application/json',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('BAD_REQUEST', 'Content-Length does not match the body');
    case 'FST_ERR_REQ_TIMEOUT':
      return new AppError('REQUEST_TIMEOUT', 'Request took too long to arrive');
    default:
      break;
  }
  // The JSON parser reports a syntax error as a plain 400 SyntaxError.
  if (error instanceof SyntaxError && error.statusCode === 400) return malformedJson(error);
  return undefined;
}

function malformedJson(error: Error): AppError {
  return new AppError('MALFORMED_JSON', 'Request body is not valid JSON', [
    { loc: ['body'], msg: `JSON decode error: ${error.message}`, type: 'json_invalid' },
  ]);
}

/**
 * Errors Fastify raises before routing (a URL that does not decode, a path parameter over the
 * router's bound): without this they would leave in Fastify's own shape.
 */
export function frameworkErrors(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  void reply.header('x-request-id', request.id);
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    send(request, reply, 'URI_TOO_LONG', 'A path segment is too long');
  } else {
    send(request, reply, 'BAD_REQUEST', 'The URL is not valid');
  }
}

/**
 * What the HTTP server itself refuses before Fastify sees a request (a head over
 * MAX_HEADER_BYTES, a request that took too long to arrive, bytes that are not HTTP): answered in
 * the one error shape too, with a request id of its own, and the connection closed.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const [code, message]: [ErrorCode, string] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? ['REQUEST_HEADER_TOO_LARGE', 'The request headers are too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['REQUEST_TIMEOUT', 'Request took too long to arrive']
        : ['BAD_REQUEST', 'The request is not valid HTTP'];
  const status = ERROR_STATUS[code];
  const requestId = randomUUID();
  const body = JSON.stringify({
    message,
    name: 'FidoTransactionsAPI',
    code,
    request_id: requestId,
  });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
}

/**
 * Installs the error handler, the 404/405 handler and request-body rules: from here on, every
 * error leaves in the one shape, and a 500 says nothing about internals.
 */
export function installErrorHandling(app: FastifyInstance): void {
  // Routes are registered into a second router too, so a path that exists under another method
  // answers 405 with an Allow header instead of 404.
  const knownRoutes = FindMyWay();
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD' || knownRoutes.hasRoute(method as HTTPMethod, route.url)) continue;
      knownRoutes.on(method as HTTPMethod, route.url, () => undefined);
    }
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = (['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const).filter(
      (method) => knownRoutes.find(method, path) !== null,
    );
    if (allowed.length > 0) {
      void reply.header('allow', allowed.join(', '));
      return send(request, reply, 'METHOD_NOT_ALLOWED', `Method ${request.method} not allowed`);
    }
    return send(request, reply, 'ROUTE_NOT_FOUND', `Route ${request.method} ${path} not found`);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const known = error instanceof AppError ? error : fromFastifyError(error);
    if (known) return send(request, reply, known.code, known.message, known.detail);
    // Errors Fastify marks as the client's (4xx) come from the request itself: reading its body,
    // say. A socket code among them (`ECONNRESET` when the client hangs up mid-body) is the
    // client's connection, not the database's, and must not raise the outage alarm.
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      if (request.raw.destroyed || error.code === 'ECONNRESET') {
        request.log.info(
          { err: error },
          'client closed the connection before the request was read',
        );
      }
      return send(request, reply, 'BAD_REQUEST', error.message);
    }
    if (error instanceof CommitOutcomeUnknown && request.method !== 'GET') {
      // Not a 503: that would tell the client nothing happened, and a retry without a key could
      // then apply the write twice.
      request.log.warn({ err: error }, 'write outcome unknown');
      return send(request, reply, 'WRITE_OUTCOME_UNKNOWN', WRITE_OUTCOME_UNKNOWN_MESSAGE);
    }
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, 'database unavailable');
      void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
      const message = request.routeOptions.config.unavailableMessage ?? DEFAULT_UNAVAILABLE_MESSAGE;
      return send(request, reply, 'SERVICE_UNAVAILABLE', message);
    }
    request.log.error({ err: error }, 'unhandled error');
    return send(request, reply, 'INTERNAL_ERROR', 'Internal server error');
  });
}
