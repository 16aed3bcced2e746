import { isDeepStrictEqual } from 'node:util';
import { IDEMPOTENCY_KEY_PATTERN } from '../domain/text.js';

/**
 * Finishes the OpenAPI document @fastify/swagger generates from the route schemas, so that it is
 * the whole contract: what each operation is called, every status and header the server can send
 * for it (including the answers the framework, the access control and the HTTP server give before
 * a handler runs), shared components instead of copies, and patterns that mean the same in every
 * regular-expression dialect a client tool may use. Only the document changes here: validation
 * and serialization keep using the route schemas themselves.
 */

type Json = Record<string, unknown>;
// The document is plain JSON: every object in it is read and written through this one shape.
type Operation = Json & {
  operationId?: string;
  parameters?: Json[];
  requestBody?: Json;
  responses?: Record<string, Json>;
  security?: Json[];
  description?: string;
  summary?: string;
  'x-required-scope'?: string;
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/**
 * The SDK method names. A route may set its own `operationId`; one missing from both gets a name
 * derived from its method and path (a test keeps them unique), so a new route never breaks the
 * build but does show up in review.
 */
const OPERATION_IDS: Readonly<Record<string, string>> = {
  'get /': 'getWelcome',
  'get /healthz': 'getLiveness',
  'get /readyz': 'getReadiness',
  'get /metrics': 'getMetrics',
  'post /api/v1/transaction': 'createTransaction',
  'get /api/v1/transaction/{id}': 'getTransaction',
  'put /api/v1/transaction/{id}': 'updateTransaction',
  'patch /api/v1/transaction/{id}': 'patchTransaction',
  'delete /api/v1/transaction/{id}': 'deleteTransaction',
  'get /api/v1/transaction/history/{user_id}': 'getTransactionHistory',
  'get /api/v1/analytics/{user_id}': 'getAnalytics',
  'get /api/v1/analytics/range/{user_id}': 'getAnalyticsForRange',
  'get /api/v1/events': 'listEvents',
  'post /api/v1/api-keys': 'createApiKey',
  'get /api/v1/api-keys': 'listApiKeys',
  'get /api/v1/api-keys/{id}': 'getApiKey',
  'delete /api/v1/api-keys/{id}': 'revokeApiKey',
  'post /api/v1/webhooks': 'createWebhook',
  'get /api/v1/webhooks': 'listWebhooks',
  'get /api/v1/webhooks/{id}': 'getWebhook',
  'patch /api/v1/webhooks/{id}': 'updateWebhook',
  'delete /api/v1/webhooks/{id}': 'deleteWebhook',
  'post /api/v1/webhooks/{id}/rotate-secret': 'rotateWebhookSecret',
  'get /api/v1/webhooks/{id}/deliveries': 'listWebhookDeliveries',
  'get /api/v1/webhooks/{id}/deliveries/{delivery_id}': 'getWebhookDelivery',
  'post /api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver': 'redeliverWebhookDelivery',
};

/** Response headers the server really sends, and on which operations (by operationId). */
const EXTRA_SUCCESS_HEADERS: Readonly<Record<string, readonly string[]>> = {
  createTransaction: ['ETag', 'Location'],
  updateTransaction: ['ETag'],
  patchTransaction: ['ETag'],
  createWebhook: ['Location', 'Cache-Control'],
  rotateWebhookSecret: ['Cache-Control'],
  createApiKey: ['Cache-Control'],
};

/** Longer path segments are refused by the router (414) before any schema runs. */
export const PATH_SEGMENT_LENGTH_MAX = 1_024;

const REQUEST_ID_EXAMPLE = '0193a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b';
const TRANSACTION_ID_EXAMPLE = '0193a3c4-1f2e-7d3c-8b4a-5f6e7d8c9b0a';

const header = (description: string, schema: Json = { type: 'string' }): Json => ({
  description,
  schema,
});

const HEADERS: Readonly<Record<string, Json>> = {
  'X-Request-Id': header(
    'The id of this request in the server log: the `X-Request-Id` the client sent when it is ' +
      '1–128 safe characters, otherwise a new UUID. Also the body’s `request_id` on errors.',
  ),
  'RateLimit-Limit': header('Requests allowed per window for this caller.', {
    type: 'integer',
    minimum: 0,
  }),
  'RateLimit-Remaining': header('Requests left in the current window.', {
    type: 'integer',
    minimum: 0,
  }),
  'RateLimit-Reset': header('Seconds until the window resets.', { type: 'integer', minimum: 0 }),
  'RateLimit-Policy': header('The policy: `<limit>;w=<window seconds>`.', {
    type: 'string',
    examples: ['600;w=60'],
  }),
  'Retry-After': header('Seconds to wait before retrying.', { type: 'integer', minimum: 0 }),
  'WWW-Authenticate': header(
    'The bearer challenge (RFC 6750): `Bearer realm="fido"`, with `error="invalid_token"` for ' +
      'refused credentials or `error="insufficient_scope", scope="…"` for a missing scope.',
  ),
  ETag: header(
    'The representation’s tag: a record’s version (`"3"`) or a weak hash of the body; send it ' +
      'back in `If-None-Match` (reads) or `If-Match` (writes).',
  ),
  Location: header('The URL of the created resource.', { type: 'string', format: 'uri-reference' }),
  'Idempotent-Replayed': header(
    '`true` when this is the stored answer to an earlier request with the same ' +
      '`Idempotency-Key` and body; absent otherwise.',
    { type: 'string', enum: ['true'] },
  ),
  'Cache-Control': header('`no-store`: the answer holds a secret no cache may keep.', {
    type: 'string',
    enum: ['no-store'],
  }),
  'Fido-Auth': header(
    'Whether requests need credentials right now: `required`, or `open` (development only, no ' +
      'way to authenticate is configured yet).',
    { type: 'string', enum: ['open', 'required'] },
  ),
};

/** The error body, as sent for every status but 422 (which adds `detail`). */
const ERROR_SCHEMA: Json = {
  type: 'object',
  title: 'Error',
  description: 'Every error the API answers, whatever the status, has this shape.',
  required: ['message', 'name', 'code', 'request_id'],
  properties: {
    message: { type: 'string', description: 'What went wrong, for people.' },
    name: { type: 'string', enum: ['FidoTransactionsAPI'] },
    code: {
      type: 'string',
      description: 'Stable machine-readable code, e.g. TRANSACTION_NOT_FOUND.',
    },
    request_id: { type: 'string', description: 'The `X-Request-Id` of this request.' },
  },
};

const VALIDATION_ERROR_SCHEMA: Json = {
  type: 'object',
  title: 'ValidationError',
  description:
    'A 422: the error body, with `detail` naming each offending field when the request did not ' +
    'meet its schema (an `Idempotency-Key` reused with another body has no `detail`).',
  required: ['message', 'name', 'code', 'request_id'],
  properties: {
    ...(ERROR_SCHEMA.properties as Json),
    detail: {
      type: 'array',
      description: 'One entry per offending field, shaped like FastAPI’s.',
      items: {
        type: 'object',
        required: ['loc', 'msg', 'type'],
        properties: {
          loc: {
            type: 'array',
            items: { anyOf: [{ type: 'string' }, { type: 'integer' }] },
            description: 'Where: `body`, `query`, `path` or `header`, then the field.',
          },
          msg: { type: 'string' },
          type: { type: 'string' },
        },
      },
    },
  },
};

interface ErrorExample {
  code: string;
  message: string;
  detail?: Json[];
}

const errorExample = ({ code, message, detail }: ErrorExample): Json => ({
  message,
  name: 'FidoTransactionsAPI',
  code,
  request_id: REQUEST_ID_EXAMPLE,
  ...(detail ? { detail } : {}),
});

/** Per status: what it means here, and the answers an operation may give with it. */
const STATUS_TEXT: Readonly<Record<string, string>> = {
  '400':
    'The URL is not valid (a path segment that does not percent-decode), or the body does not ' +
    'match its Content-Length.',
  '401':
    'No credentials, or credentials that are malformed, unknown, revoked or expired (see ' +
    '`WWW-Authenticate`).',
  '403': 'The API key is valid but lacks the scope this operation requires.',
  '404': 'Not found.',
  '409': 'Conflict.',
  '410': 'Gone.',
  '412': 'Precondition failed: `If-Match` names no current version (the record changed since).',
  '413': 'The request body is larger than the server accepts (`BODY_LIMIT_BYTES`).',
  '414': `A path segment is longer than ${PATH_SEGMENT_LENGTH_MAX} characters.`,
  '415': 'The request body is not `application/json`.',
  '422': 'The request does not meet its schema (see `detail`), or its JSON does not parse.',
  '429': 'Too many requests: wait `Retry-After` seconds.',
  '431':
    'The request line and headers are larger than the server accepts (`MAX_HEADER_BYTES`); ' +
    'answered by the HTTP server before any route runs.',
  '503':
    'A dependency (the database) is unavailable, or the server is shutting down: retry after ' +
    '`Retry-After` seconds.',
  '504':
    'The database did not confirm the write: it may or may not have been applied. Retry with the ' +
    'same `Idempotency-Key` to learn its outcome, or read the record before writing again.',
};

const GENERIC_EXAMPLES: Readonly<Record<string, ErrorExample[]>> = {
  '400': [{ code: 'BAD_REQUEST', message: 'The URL is not valid' }],
  '401': [
    {
      code: 'UNAUTHENTICATED',
      message: 'Authentication required: send Authorization: Bearer <API key or user token>',
    },
  ],
  '404': [{ code: 'ROUTE_NOT_FOUND', message: 'Route GET /api/v1/api-keys not found' }],
  '412': [
    {
      code: 'PRECONDITION_FAILED',
      message: `Transaction ${TRANSACTION_ID_EXAMPLE} has changed: If-Match does not match its current version 2`,
    },
  ],
  '413': [{ code: 'PAYLOAD_TOO_LARGE', message: 'Request body is too large' }],
  '414': [{ code: 'URI_TOO_LONG', message: 'A path segment is too long' }],
  '415': [
    { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Unsupported content type: send application/json' },
  ],
  '422': [
    {
      code: 'VALIDATION_FAILED',
      message: 'Validation failed: body.transaction_amount: Input should be greater than 0',
      detail: [
        {
          loc: ['body', 'transaction_amount'],
          msg: 'Input should be greater than 0',
          type: 'greater_than',
        },
      ],
    },
  ],
  '429': [
    {
      code: 'RATE_LIMITED',
      message: 'Too many requests, retry after the time in Retry-After',
    },
  ],
  '431': [
    {
      code: 'REQUEST_HEADER_TOO_LARGE',
      message: 'The request headers are too large',
    },
  ],
  '503': [
    { code: 'SERVICE_UNAVAILABLE', message: 'Service is unavailable, please try again later' },
  ],
};

/** The not-found answer of each kind of resource, chosen by the operation's path. */
function notFoundExample(path: string): ErrorExample {
  if (path.includes('/deliveries/')) {
    return {
      code: 'DELIVERY_NOT_FOUND',
      message: `Delivery with ID ${TRANSACTION_ID_EXAMPLE} not found`,
    };
  }
  if (path.startsWith('/api/v1/webhooks/')) {
    return {
      code: 'WEBHOOK_NOT_FOUND',
      message: `Webhook with ID ${TRANSACTION_ID_EXAMPLE} not found`,
    };
  }
  if (path.startsWith('/api/v1/api-keys/')) {
    return { code: 'API_KEY_NOT_FOUND', message: 'API key k0123456789abcdef not found' };
  }
  if (path.startsWith('/api/v1/transaction/history/')) {
    return {
      code: 'TRANSACTION_HISTORY_NOT_FOUND',
      message: 'Transaction history not found for user ID user-123',
    };
  }
  if (path.startsWith('/api/v1/analytics/')) {
    return {
      code: 'ANALYTICS_NOT_FOUND',
      message: 'Transaction analytics not found for user ID user-123',
    };
  }
  if (path.startsWith('/api/v1/transaction/')) {
    return {
      code: 'TRANSACTION_NOT_FOUND',
      message: `Transaction with id: ${TRANSACTION_ID_EXAMPLE} not found.`,
    };
  }
  return { code: 'USER_NOT_FOUND', message: 'User ID user-456 not found' };
}

function examplesFor(status: string, path: string, operation: Operation): ErrorExample[] {
  const params = new Set((operation.parameters ?? []).map((p) => String(p.name).toLowerCase()));
  const scope = operation['x-required-scope'];
  switch (status) {
    case '403':
      return [
        {
          code: 'INSUFFICIENT_SCOPE',
          message: `This API key lacks the scope ${scope ?? 'admin'}`,
        },
      ];
    case '404': {
      const examples: ErrorExample[] = [];
      if (path.includes('{') || operation.operationId === 'listEvents') {
        examples.push(notFoundExample(path));
      }
      if (operation.security?.length) {
        examples.push({ code: 'USER_NOT_FOUND', message: 'User ID user-456 not found' });
      }
      return examples.length > 0 ? examples : (GENERIC_EXAMPLES['404'] ?? []);
    }
    case '409': {
      const examples: ErrorExample[] = [];
      if (params.has('idempotency-key')) {
        examples.push({
          code: 'IDEMPOTENCY_KEY_IN_FLIGHT',
          message: 'A request with this Idempotency-Key is still being processed; retry later',
        });
      }
      if (operation.operationId === 'createWebhook') {
        examples.push({
          code: 'WEBHOOK_LIMIT_REACHED',
          message: 'This deployment already has the most webhooks it allows',
        });
      }
      return examples;
    }
    case '410':
      return [{ code: 'EVENT_EXPIRED', message: 'The event of this delivery has been pruned' }];
    case '422': {
      const examples = [...(GENERIC_EXAMPLES['422'] ?? [])];
      if (params.has('idempotency-key')) {
        examples.push({
          code: 'IDEMPOTENCY_KEY_REUSED',
          message: 'This Idempotency-Key was used with a different request',
        });
      }
      return examples;
    }
    default:
      return GENERIC_EXAMPLES[status] ?? [];
  }
}

function describeStatus(status: string, operation: Operation, path: string): string {
  switch (status) {
    case '404': {
      const parts: string[] = [];
      if (path.includes('{')) parts.push('No such record.');
      if (operation.security?.length) {
        parts.push(
          operation.description?.includes('User tokens: not available')
            ? 'To a user token this operation does not exist.'
            : 'To a user token, another user’s data looks like data that does not exist.',
        );
      }
      return parts.length > 0 ? `Not found. ${parts.join(' ')}` : 'Not found.';
    }
    case '409': {
      const reasons: string[] = [];
      const params = new Set((operation.parameters ?? []).map((p) => String(p.name)));
      if (params.has('idempotency-key')) {
        reasons.push('a request with the same `Idempotency-Key` is still being processed');
      }
      if (operation.operationId === 'createWebhook') {
        reasons.push('the deployment already has `WEBHOOK_MAX_ENDPOINTS` webhooks');
      }
      return `Conflict: ${reasons.join('; or ')}.`;
    }
    case '410':
      return 'Gone: the delivery’s event has been pruned, so it cannot be sent again.';
    case '422': {
      const params = new Set((operation.parameters ?? []).map((p) => String(p.name)));
      return params.has('idempotency-key')
        ? `${STATUS_TEXT['422']} Also: the \`Idempotency-Key\` was used before with another request.`
        : (STATUS_TEXT['422'] ?? '');
    }
    default:
      return STATUS_TEXT[status] ?? `HTTP ${status}.`;
  }
}

const TRANSACTION_EXAMPLE: Json = {
  id: TRANSACTION_ID_EXAMPLE,
  user_id: 'user-123',
  full_name: 'Ama Owusu',
  transaction_date: '2024-10-10T09:00:00.000Z',
  transaction_amount: 100.5,
  transaction_type: 'credit',
  currency: 'GHS',
  description: 'Salary',
  metadata: { source: 'payroll' },
  created_at: '2024-10-10T09:00:01.234Z',
  updated_at: '2024-10-10T09:00:01.234Z',
  version: 1,
  legacy_id: null,
};

/** Real answers where a tool would otherwise invent one from the schema (zeros and "string"). */
const SUCCESS_EXAMPLES: Readonly<Record<string, Json>> = {
  createTransaction: {
    data: TRANSACTION_EXAMPLE,
    code: 201,
    message: 'Transaction added successfully.',
  },
  getTransaction: {
    data: TRANSACTION_EXAMPLE,
    code: 200,
    message: 'Transaction data retrieved successfully',
  },
  updateTransaction: {
    data: { ...TRANSACTION_EXAMPLE, transaction_amount: 120, version: 2 },
    code: 200,
    message: 'Transaction updated successfully',
  },
  patchTransaction: {
    data: { ...TRANSACTION_EXAMPLE, transaction_amount: 120, version: 2 },
    code: 200,
    message: 'Transaction updated successfully',
  },
  deleteTransaction: {
    data: `Transaction with ID: ${TRANSACTION_ID_EXAMPLE} removed`,
    code: 200,
    message: 'Transaction deleted successfully',
  },
  getTransactionHistory: {
    data: [TRANSACTION_EXAMPLE],
    code: 200,
    message: 'Transaction history retrieved successfully',
    pagination: { limit: 100, next_cursor: null, has_more: false },
  },
};

const SUCCESS_TEXT: Readonly<Record<string, string>> = {
  '200': 'OK',
  '201': 'Created',
};

const headerRef = (name: string): Json => ({ $ref: `#/components/headers/${name}` });
const schemaRef = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

const RATE_LIMIT_HEADERS = [
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'RateLimit-Policy',
];

/** The headers a response of this status carries on this operation. */
function headersFor(status: string, operation: Operation, method: string): string[] {
  const names = ['X-Request-Id'];
  const code = Number(status);
  const authenticated = (operation.security?.length ?? 0) > 0;
  // Rate limiting runs before the route's own work, after routing: everything but the answers
  // the router and the HTTP server give first (a 400 may come from either side).
  if (authenticated && !['414', '431'].includes(status)) names.push(...RATE_LIMIT_HEADERS);
  if (status === '429' || status === '503') names.push('Retry-After');
  if (status === '401' || status === '403') names.push('WWW-Authenticate');
  if (method === 'get' && (status === '200' || status === '304')) names.push('ETag');
  if (code >= 200 && code < 300) {
    names.push(...(EXTRA_SUCCESS_HEADERS[operation.operationId ?? ''] ?? []));
    const params = new Set((operation.parameters ?? []).map((p) => String(p.name)));
    if (params.has('idempotency-key')) names.push('Idempotent-Replayed');
  }
  if (operation.operationId === 'getReadiness' && ['200', '304', '503'].includes(status)) {
    names.push('Fido-Auth');
  }
  return [...new Set(names)];
}

/** True when a parameter's schema can refuse a value (so the operation can answer 422). */
function constrains(schema: unknown): boolean {
  if (schema === null || typeof schema !== 'object') return false;
  const keys = Object.keys(schema).filter(
    (k) =>
      !['description', 'examples', 'example', 'default', 'title', 'x-error-message'].includes(k),
  );
  return !(keys.length === 1 && keys[0] === 'type' && (schema as Json).type === 'string');
}

/**
 * Rewrites a pattern using `\p{Cc}` / `\p{Cs}` (which need the `u` flag) into one that means the
 * same with and without it: control characters as explicit ranges, and "no lone surrogate" as
 * "any non-surrogate code unit, or a high surrogate followed by a low one". Any other `\p{…}`
 * is refused, so a new one cannot slip into the document unnoticed.
 */
export function portablePattern(pattern: string): string {
  const rewritten = pattern.replace(/\[\^((?:[^\]\\]|\\.)*)\]/g, (whole, body: string) => {
    if (!body.includes('\\p{')) return whole;
    const hasSurrogates = body.includes('\\p{Cs}');
    const ranges = body
      .replaceAll('\\p{Cc}', '\\u0000-\\u001f\\u007f-\\u009f')
      .replaceAll('\\p{Cs}', '\\ud800-\\udfff');
    const single = `[^${ranges}]`;
    return hasSurrogates ? `(?:${single}|[\\ud800-\\udbff][\\udc00-\\udfff])` : single;
  });
  if (rewritten.includes('\\p{') || rewritten.includes('\\P{')) {
    throw new Error(`openapi: no portable form known for the pattern ${pattern}`);
  }
  return rewritten;
}

/** Walks every object in the document, children first. */
function walk(value: unknown, visit: (node: Json) => void): void {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, visit);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const child of Object.values(value)) walk(child, visit);
  visit(value as Json);
}

/** A schema TypeBox named (`{ title }`) that is not yet a reference. */
const isTitledSchema = (node: Json): node is Json & { title: string } =>
  typeof node.title === 'string' && ('type' in node || 'anyOf' in node);

function containsTitledSchema(node: Json): boolean {
  let found = false;
  for (const child of Object.values(node)) {
    walk(child, (inner) => {
      if (isTitledSchema(inner)) found = true;
    });
  }
  return found;
}

/**
 * Moves every titled schema into `components.schemas` (one copy per title) and refers to it, as
 * long as all copies under that title are the same schema; otherwise they stay inline. Innermost
 * first, pass by pass, so an envelope is compared once its record is already a reference.
 */
function hoistTitledSchemas(document: Json, schemas: Record<string, Json>): void {
  for (let changed = true; changed;) {
    changed = false;
    const byTitle = new Map<string, Json[]>();
    walk(document.paths, (node) => {
      if (isTitledSchema(node) && !containsTitledSchema(node)) {
        byTitle.set(node.title, [...(byTitle.get(node.title) ?? []), node]);
      }
    });
    for (const [title, copies] of byTitle) {
      const [first] = copies;
      if (!first || !copies.every((copy) => isDeepStrictEqual(copy, first))) continue;
      schemas[title] = structuredClone(first);
      for (const copy of copies) {
        for (const key of Object.keys(copy)) Reflect.deleteProperty(copy, key);
        Object.assign(copy, schemaRef(title));
      }
      changed = true;
    }
  }
}

const isRef = (value: unknown): value is { $ref: string } =>
  typeof value === 'object' && value !== null && '$ref' in value;

/** What one operation needs from the document's point of view. */
function finishOperation(path: string, method: string, operation: Operation, document: Json): void {
  operation.operationId ??=
    OPERATION_IDS[`${method} ${path}`] ??
    method +
      path
        .split(/[^A-Za-z0-9]+/)
        .filter(Boolean)
        .map((word) => word[0]?.toUpperCase() + word.slice(1))
        .join('');

  const parameters = operation.parameters ?? [];
  // Before the path bound below is added: that one answers 414 (the router), not 422.
  const validated = parameters.some((p) => constrains(p.schema));
  const authenticated = (operation.security?.length ?? 0) > 0;
  if (!authenticated) {
    operation.security = [];
    operation.description = [operation.description, 'Public: no credentials needed.']
      .filter(Boolean)
      .join('\n\n');
  }

  for (const parameter of parameters) {
    const schema = (parameter.schema ?? {}) as Json;
    const name = String(parameter.name).toLowerCase();
    if (parameter.in === 'path' && schema.type === 'string') {
      schema.maxLength = Math.min(Number(schema.maxLength ?? Infinity), PATH_SEGMENT_LENGTH_MAX);
    }
    if (parameter.in === 'header' && name === 'idempotency-key') {
      schema.pattern = IDEMPOTENCY_KEY_PATTERN;
    }
    parameter.schema = schema;
  }

  const responses = (operation.responses ??= {});
  const statuses = new Set(Object.keys(responses));
  const add = (...codes: string[]) => codes.forEach((code) => statuses.add(code));
  // Every operation: the HTTP server's refusal of an oversized head, and the 503 of a server
  // that is shutting down (or whose database is away).
  add('431', '503');
  if (parameters.some((p) => p.in === 'path')) add('400', '414');
  if (operation.requestBody) add('400', '413', '415', '422');
  if (validated) add('422');
  const names = new Set(parameters.map((p) => String(p.name).toLowerCase()));
  if (names.has('idempotency-key')) add('409', '422');
  if (names.has('if-match')) add('412');
  // A user token may be refused as not found on any authenticated operation (another user's
  // data, or an operation for service keys only).
  if (authenticated) add('401', '403', '404', '429');

  if (method === 'get' && responses['200']) {
    add('304');
    if (!names.has('if-none-match')) {
      parameters.push({
        in: 'header',
        name: 'if-none-match',
        required: false,
        description: 'An `ETag` from an earlier answer: 304 with no body while it still matches.',
        schema: { type: 'string', maxLength: 1_024 },
      });
    }
  }
  if (parameters.length > 0) operation.parameters = parameters;

  const finished: Record<string, Json> = {};
  for (const status of [...statuses].sort()) {
    const existing = responses[status];
    const code = Number(status);
    const response: Json = existing ? { ...existing } : {};
    const headers = Object.fromEntries(
      headersFor(status, operation, method).map((name) => [name, headerRef(name)]),
    );
    if (code >= 400) {
      const content = (response.content as Record<string, Json> | undefined)?.['application/json'];
      const inlineSchema = content?.schema as Json | undefined;
      // The shared error body, unless the operation answers this status with its own (readyz).
      const ownSchema =
        inlineSchema && !isRef(inlineSchema) && inlineSchema.title !== 'Error'
          ? inlineSchema
          : undefined;
      const examples = examplesFor(status, path, operation);
      const media: Json = {
        schema: ownSchema ?? schemaRef(status === '422' ? 'ValidationError' : 'Error'),
      };
      if (examples.length === 1) {
        media.example = errorExample(examples[0] as ErrorExample);
        if (operation.operationId === 'getReadiness' && status === '503') {
          media.example = {
            ...errorExample(examples[0] as ErrorExample),
            checks: { database: 'unavailable', cache: 'ok' },
          };
        }
      }
      if (examples.length > 1) {
        media.examples = Object.fromEntries(
          examples.map((example) => [
            example.code,
            { summary: example.code, value: errorExample(example) },
          ]),
        );
      }
      response.description = describeStatus(status, operation, path);
      response.content = { 'application/json': media };
    } else if (status === '304') {
      response.description = 'Not modified: `If-None-Match` names the current `ETag`. No body.';
      delete response.content;
    } else if (response.description === 'Default Response' || !response.description) {
      response.description = `${SUCCESS_TEXT[status] ?? 'Success'}: ${
        operation.summary ?? 'the result'
      }.`;
    }
    if (operation.operationId === 'getMetrics' && status === '200') {
      // prom-client's text exposition format (version 0.0.4), not JSON.
      response.content = {
        'text/plain': {
          schema: { type: 'string', description: 'Prometheus text exposition format 0.0.4.' },
          example:
            '# HELP fido_reconciliation_runs_total Reconciliation runs\n' +
            '# TYPE fido_reconciliation_runs_total counter\nfido_reconciliation_runs_total 3\n',
        },
      };
    }
    const example = SUCCESS_EXAMPLES[operation.operationId ?? ''];
    const json = (response.content as Record<string, Json> | undefined)?.['application/json'];
    if (code >= 200 && code < 300 && example && json) json.example = example;
    response.headers = headers;
    finished[status] = response;
  }
  operation.responses = finished;
  void document;
}

const RESPONSE_NAMES: Readonly<Record<string, string>> = {
  '304': 'NotModified',
  '400': 'BadRequest',
  '401': 'Unauthorized',
  '403': 'Forbidden',
  '404': 'NotFound',
  '409': 'Conflict',
  '410': 'Gone',
  '412': 'PreconditionFailed',
  '413': 'PayloadTooLarge',
  '414': 'UriTooLong',
  '415': 'UnsupportedMediaType',
  '422': 'ValidationFailed',
  '429': 'TooManyRequests',
  '431': 'RequestHeaderFieldsTooLarge',
  '503': 'ServiceUnavailable',
  '504': 'WriteOutcomeUnknown',
};

/**
 * Answers that are the same on several operations (the 401 of every authenticated one, say) move
 * to `components.responses`, one per variant: the most common takes the plain name, one without
 * rate-limit headers is `…Public`, others are numbered.
 */
function hoistSharedResponses(
  paths: Record<string, Record<string, Operation>>,
  responses: Record<string, Json>,
): void {
  const variants = new Map<string, { response: Json; uses: Json[] }[]>();
  for (const item of Object.values(paths)) {
    for (const method of METHODS) {
      for (const [status, response] of Object.entries(item[method]?.responses ?? {})) {
        if (!RESPONSE_NAMES[status]) continue;
        const list = variants.get(status) ?? [];
        const same = list.find((variant) => isDeepStrictEqual(variant.response, response));
        if (same) same.uses.push(response);
        else list.push({ response: structuredClone(response), uses: [response] });
        variants.set(status, list);
      }
    }
  }
  for (const [status, list] of [...variants].sort(([a], [b]) => a.localeCompare(b))) {
    const shared = list.filter((variant) => variant.uses.length > 1);
    shared.sort((a, b) => b.uses.length - a.uses.length);
    shared.forEach((variant, index) => {
      const base = RESPONSE_NAMES[status] ?? status;
      const isPublic = !JSON.stringify(variant.response).includes('RateLimit-Limit');
      let name = index === 0 ? base : isPublic ? `${base}Public` : `${base}${index + 1}`;
      if (responses[name]) name = `${base}${index + 1}`;
      responses[name] = variant.response;
      for (const use of variant.uses) {
        for (const key of Object.keys(use)) Reflect.deleteProperty(use, key);
        Object.assign(use, { $ref: `#/components/responses/${name}` });
      }
    });
  }
}

/** The `transformObject` of @fastify/swagger: the generated document, finished. */
export function finishDocument(document: Json): Json {
  const components = (document.components ??= {}) as Json;
  const schemas = (components.schemas ??= {}) as Record<string, Json>;
  schemas.Error = ERROR_SCHEMA;
  schemas.ValidationError = VALIDATION_ERROR_SCHEMA;
  components.headers = HEADERS;

  const paths = (document.paths ?? {}) as Record<string, Record<string, Operation>>;
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (operation) finishOperation(path, method, operation, document);
    }
  }

  walk(paths, (node) => {
    if (typeof node.pattern === 'string') node.pattern = portablePattern(node.pattern);
  });
  hoistTitledSchemas(document, schemas);
  hoistSharedResponses(paths, (components.responses ??= {}) as Record<string, Json>);

  // Headers used nowhere would only be noise (and a lint warning).
  const text = JSON.stringify([paths, components.responses]);
  for (const name of Object.keys(HEADERS)) {
    if (!text.includes(`"#/components/headers/${name}"`)) {
      Reflect.deleteProperty(components.headers as Json, name);
    }
  }
  return document;
}
