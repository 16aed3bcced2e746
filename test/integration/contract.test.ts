import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp,
  createTestDatabase,
  testConfig,
  testKeyRing,
  useTestApp,
} from '../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { Contract, fillPath, type Answer, type Operation } from '../helpers/contract.js';
import { transactionBody } from '../helpers/factories.js';
import { eventually, WebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * The contract, operation by operation: every operation called with valid inputs and made to give
 * each error status its document lists, every answer checked against the served document by a
 * validator that is not the server's (Ajv, JSON Schema 2020-12). The last test proves coverage:
 * every documented (operation, status) pair was seen, except the few listed with the reason they
 * cannot be provoked here.
 */

const ENV = {
  ...REQUIRED_AUTH_ENV,
  WORKER: 'inline',
  WORKER_POLL_MS: '50',
  WEBHOOK_MAX_ENDPOINTS: '3',
  RATE_LIMIT_MAX: '100000',
  RATE_LIMIT_IP_MAX: '100000',
};
/** One key ring for every app this file builds on the database: each reads what the others wrote. */
const KEYS = testKeyRing();
const context = useTestApp({ env: ENV, deps: { keyRing: KEYS } });

/** Pairs no request in this file can provoke, and why. Kept exact: a new one must be listed. */
const NOT_PROVOKED: Record<string, string> = {
  // The key's row is locked by a concurrent request in another transaction; PGlite runs one
  // transaction at a time, and on PostgreSQL the window is a race (idempotency.test.ts).
  'createTransaction 409': 'Idempotency-Key in flight',
  'updateTransaction 409': 'Idempotency-Key in flight',
  'patchTransaction 409': 'Idempotency-Key in flight',
  'deleteTransaction 409': 'Idempotency-Key in flight',
  // Needs the prune job to have removed the delivery's event (webhooks.test.ts covers it).
  'redeliverWebhookDelivery 410': 'event pruned',
  // Only while the server shuts down: these operations touch no dependency.
  'getWelcome 503': 'shutting down',
  'getLiveness 503': 'shutting down',
  'getMetrics 503': 'shutting down',
  // Its ETag changes with every read (the process's CPU time is in it).
  'getMetrics 304': 'never the same twice',
};

const seen = new Set<string>();
const problems: string[] = [];
let contract: Contract;

interface Call {
  params?: Record<string, string>;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
  /** Sent as is (a string or bytes), with the content type given in headers. */
  raw?: string | Buffer;
  /** A credential, or `null` for none; the admin key when omitted. */
  as?: string | null;
  app?: FastifyInstance;
}

let admin: string;

function urlOf(operation: Operation, call: Call): string {
  const path = fillPath(operation.path, call.params ?? {});
  const query = new URLSearchParams(call.query ?? {}).toString();
  return query ? `${path}?${query}` : path;
}

/** Records the answer's (operation, status) pair and every way it departs from the document. */
function record(operation: Operation, answer: Answer, what = ''): void {
  if (answer.statusCode >= 500 && answer.statusCode !== 503)
    problems.push(`${operation.id} ${what}: ${answer.statusCode}`);
  seen.add(`${operation.id} ${answer.statusCode}`);
  problems.push(...contract.problems(operation, answer));
}

async function call(id: string, status: number, options: Call = {}): Promise<Answer> {
  const operation = contract.operation(id);
  const credential = options.as === undefined ? admin : options.as;
  const headers: Record<string, string> = {
    ...(credential ? bearer(credential) : {}),
    ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...options.headers,
  };
  const payload =
    options.raw ?? (options.body !== undefined ? JSON.stringify(options.body) : undefined);
  const response = await (options.app ?? context.app).inject({
    method: operation.method as 'GET',
    url: urlOf(operation, options),
    headers,
    ...(payload !== undefined ? { payload } : {}),
  });
  const answer = {
    statusCode: response.statusCode,
    headers: response.headers,
    body: response.body,
  };
  record(operation, answer);
  expect(answer.statusCode, `${id}: ${answer.body.slice(0, 300)}`).toBe(status);
  return answer;
}

const data = (answer: Answer) => (JSON.parse(answer.body) as { data: Record<string, string> }).data;

/** Values for every operation's valid call, made as the tests go. */
const f = {
  userId: 'contract-user',
  transactionId: '',
  keyId: '',
  webhookId: '',
  deliveryId: '',
};
let receiver: WebhookReceiver;

beforeAll(async () => {
  contract = await Contract.load(context.app);
  admin = (await createKey(context.database, ['admin'])).key;
  receiver = await WebhookReceiver.start();
});
afterAll(async () => {
  await receiver?.close();
});

/** Creates another record to delete, and gives its id. */
async function another(url: string): Promise<string> {
  const payload = url.endsWith('webhooks')
    ? { url: 'https://hooks.example.com/another' }
    : transactionBody({ user_id: f.userId });
  const response = await context.app.inject({
    method: 'POST',
    url,
    headers: bearer(admin),
    payload,
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ data: { id: string } }>().data.id;
}

/** A valid call per operation, in an order that leaves the fixtures the later ones need. */
const VALID: [string, number, () => Call | Promise<Call>][] = [
  ['getWelcome', 200, () => ({ as: null })],
  ['getLiveness', 200, () => ({ as: null })],
  ['getReadiness', 200, () => ({ as: null })],
  ['getMetrics', 200, () => ({ as: null })],
  ['createWebhook', 201, () => ({ body: { url: receiver.url('/contract') } })],
  ['createTransaction', 201, () => ({ body: transactionBody({ user_id: f.userId }) })],
  ['getTransaction', 200, () => ({ params: { id: f.transactionId } })],
  [
    'updateTransaction',
    200,
    () => ({ params: { id: f.transactionId }, body: { description: 'a' } }),
  ],
  [
    'patchTransaction',
    200,
    () => ({ params: { id: f.transactionId }, body: { description: 'b' } }),
  ],
  ['getTransactionHistory', 200, () => ({ params: { user_id: f.userId } })],
  ['getAnalytics', 200, () => ({ params: { user_id: f.userId } })],
  [
    'getAnalyticsForRange',
    200,
    () => ({ params: { user_id: f.userId }, query: { start_date: '2000-01-01' } }),
  ],
  ['listEvents', 200, () => ({ query: { user_id: f.userId } })],
  ['createApiKey', 201, () => ({ body: { name: 'contract', scopes: ['analytics:read'] } })],
  ['listApiKeys', 200, () => ({})],
  ['getApiKey', 200, () => ({ params: { id: f.keyId } })],
  ['listWebhooks', 200, () => ({})],
  ['getWebhook', 200, () => ({ params: { id: f.webhookId } })],
  ['updateWebhook', 200, () => ({ params: { id: f.webhookId }, body: { description: 'c' } })],
  ['rotateWebhookSecret', 200, () => ({ params: { id: f.webhookId } })],
  ['listWebhookDeliveries', 200, () => ({ params: { id: f.webhookId } })],
  ['getWebhookDelivery', 200, () => ({ params: { id: f.webhookId, delivery_id: f.deliveryId } })],
  [
    'redeliverWebhookDelivery',
    200,
    () => ({ params: { id: f.webhookId, delivery_id: f.deliveryId } }),
  ],
  // On records of their own: the error statuses below still need the ones above.
  [
    'revokeApiKey',
    200,
    async () => ({ params: { id: (await createKey(context.database, ['analytics:read'])).id } }),
  ],
  [
    'deleteTransaction',
    200,
    async () => ({ params: { id: await another('/api/v1/transaction') } }),
  ],
  ['deleteWebhook', 200, async () => ({ params: { id: await another('/api/v1/webhooks') } })],
];

describe('every operation with valid inputs', () => {
  it.each(VALID)('%s answers %i', async (id, status, make) => {
    if (id === 'listWebhookDeliveries') {
      // The worker delivers the transaction's events to the webhook registered first.
      await eventually(
        async () => {
          const page = await context.app.inject({
            url: `/api/v1/webhooks/${f.webhookId}/deliveries`,
            headers: bearer(admin),
          });
          const [first] = page.json<{ data: { id: string }[] }>().data;
          return first?.id;
        },
        { timeoutMs: 30_000, what: 'a delivery' },
      );
    }
    const answer = await call(id, status, await make());
    if (id === 'createTransaction') f.transactionId = data(answer).id ?? '';
    if (id === 'createApiKey') f.keyId = data(answer).id ?? '';
    if (id === 'createWebhook') f.webhookId = data(answer).id ?? '';
    if (id === 'listWebhookDeliveries') {
      f.deliveryId = (JSON.parse(answer.body) as { data: { id: string }[] }).data[0]?.id ?? '';
    }
  });
});

/** The operations that list `status`, each with a call of its valid form. */
function documenting(status: string): Operation[] {
  return contract.operations.filter((operation) => operation.responses[status]);
}

/** A call of the operation's valid form, on ids that exist, to be spoilt by each test. */
async function validCall(
  operation: Operation,
  app = context.app,
  credential = admin,
): Promise<Call> {
  const user = f.userId;
  let id = f.transactionId;
  if (operation.path.startsWith('/api/v1/api-keys/')) id = f.keyId;
  else if (operation.path.startsWith('/api/v1/webhooks/')) id = f.webhookId;
  else if (operation.path.startsWith('/api/v1/transaction/{id}')) {
    // A record of its own: the call may change or delete it.
    const transaction = await app.inject({
      method: 'POST',
      url: '/api/v1/transaction',
      headers: bearer(credential),
      payload: transactionBody({ user_id: user }),
    });
    id = transaction.json<{ data: { id: string } }>().data.id;
  }
  const params: Record<string, string> = { id, user_id: user, delivery_id: f.deliveryId };
  const bodySchema = (operation.requestBody?.content as Record<string, { schema: unknown }>)?.[
    'application/json'
  ]?.schema;
  const bodies: Record<string, unknown> = {
    createTransaction: transactionBody({ user_id: user }),
    updateTransaction: { description: 'x' },
    patchTransaction: { description: 'x' },
    createApiKey: { name: 'n', scopes: ['analytics:read'] },
    createWebhook: { url: 'https://hooks.example.com/x' },
    updateWebhook: { description: 'x' },
  };
  return {
    params,
    ...(operation.id === 'listEvents' ? { query: { user_id: user } } : {}),
    ...(bodySchema ? { body: bodies[operation.id] ?? {} } : {}),
  };
}

describe('each documented error status', () => {
  it('401 without credentials', async () => {
    for (const operation of documenting('401')) {
      await call(operation.id, 401, { ...(await validCall(operation)), as: null });
    }
  });

  it('403 for a key without the scope', async () => {
    const analyticsOnly = (await createKey(context.database, ['analytics:read'])).key;
    const transactionsOnly = (await createKey(context.database, ['transactions:read'])).key;
    for (const operation of documenting('403')) {
      const key = operation.id.startsWith('getAnalytics') ? transactionsOnly : analyticsOnly;
      await call(operation.id, 403, { ...(await validCall(operation)), as: key });
    }
  });

  it('404 for what does not exist, or is not the user token’s', async () => {
    const stranger = await userToken('someone-else');
    for (const operation of documenting('404')) {
      await call(operation.id, 404, { ...(await validCall(operation)), as: stranger });
    }
  });

  it('400 for a path parameter that does not decode', async () => {
    for (const operation of documenting('400')) {
      const valid = await validCall(operation);
      if (operation.path.includes('{')) {
        const answer = await context.app.inject({
          method: operation.method as 'GET',
          url: urlOf(operation, valid).replace(/\/[^/?]*(\?|$)/, '/%zz$1'),
          headers: bearer(admin),
        });
        record(operation, answer);
        expect(answer.statusCode, `${operation.id}: ${answer.body}`).toBe(400);
      } else {
        // No path parameter: a body shorter than its Content-Length.
        await call(operation.id, 400, {
          ...valid,
          raw: '{}',
          headers: { 'content-type': 'application/json', 'content-length': '10' },
        });
      }
    }
  });

  it('414 for a path segment over the router’s bound', async () => {
    for (const operation of documenting('414')) {
      const params = Object.fromEntries(
        operation.parameters.filter((p) => p.in === 'path').map((p) => [p.name, 'x'.repeat(1_100)]),
      );
      await call(operation.id, 414, { ...(await validCall(operation)), params });
    }
  });

  it('413, 415 and 422 for bodies too large, not JSON, or not meeting the schema', async () => {
    const limit = testConfig(ENV).bodyLimitBytes;
    for (const operation of documenting('413')) {
      await call(operation.id, 413, {
        ...(await validCall(operation)),
        raw: JSON.stringify({ description: 'x'.repeat(limit) }),
        headers: { 'content-type': 'application/json' },
      });
    }
    for (const operation of documenting('415')) {
      await call(operation.id, 415, {
        ...(await validCall(operation)),
        raw: 'hello',
        headers: { 'content-type': 'text/plain' },
      });
    }
    for (const operation of documenting('422')) {
      const valid = await validCall(operation);
      const call422: Call = operation.requestBody
        ? { ...valid, raw: '[1]', headers: { 'content-type': 'application/json' } }
        : {
            ...valid,
            // The first constrained parameter, given a value it refuses.
            ...spoilParameter(operation, valid),
          };
      const answer = await call(operation.id, 422, call422);
      expect(JSON.parse(answer.body)).toHaveProperty('detail');
    }
  });

  it('412 for a stale If-Match, and 304 for a current If-None-Match', async () => {
    for (const operation of documenting('412')) {
      await call(operation.id, 412, {
        ...(await validCall(operation)),
        headers: { 'if-match': '"999"' },
      });
    }
    for (const operation of documenting('304')) {
      const valid = await validCall(operation);
      const first = await context.app.inject({
        method: 'GET',
        url: urlOf(operation, valid),
        headers: operation.authenticated ? bearer(admin) : {},
      });
      // Operations on fixtures this call does not have (a delivery), and the metrics, which
      // change between two reads.
      if (first.statusCode !== 200 || operation.id === 'getMetrics') continue;
      // A delivery the worker is still attempting changes between two reads: read until stable.
      let etag = String(first.headers.etag);
      const answer = await eventually(
        async () => {
          const conditional = await context.app.inject({
            method: 'GET',
            url: urlOf(operation, valid),
            headers: {
              ...(operation.authenticated ? bearer(admin) : {}),
              'if-none-match': etag,
            },
          });
          etag = String(conditional.headers.etag);
          return conditional.statusCode === 304 ? conditional : undefined;
        },
        { timeoutMs: 60_000, what: `a 304 from ${operation.id}` },
      );
      record(operation, answer);
    }
  });

  it('409 when the webhook limit is reached, and 422 for a reused Idempotency-Key', async () => {
    // Three allowed (ENV): the first was created above; fill up, then one more.
    for (;;) {
      const answer = await context.app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        headers: bearer(admin),
        payload: { url: 'https://hooks.example.com/fill' },
      });
      if (answer.statusCode !== 201) break;
    }
    await call('createWebhook', 409, { body: { url: 'https://hooks.example.com/more' } });
    for (const operation of documenting('422').filter((o) =>
      o.parameters.some((p) => p.name === 'idempotency-key'),
    )) {
      const valid = await validCall(operation);
      const key = `contract-${operation.id}`;
      const first = await context.app.inject({
        method: operation.method as 'GET',
        url: urlOf(operation, valid),
        headers: { ...bearer(admin), 'idempotency-key': key },
        ...(valid.body !== undefined ? { payload: valid.body as object } : {}),
      });
      record(operation, first);
      const replay = await context.app.inject({
        method: operation.method as 'GET',
        url: urlOf(operation, valid),
        headers: { ...bearer(admin), 'idempotency-key': key },
        ...(valid.body !== undefined ? { payload: valid.body as object } : {}),
      });
      record(operation, replay);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      const answer = await call(operation.id, 422, {
        ...valid,
        ...(valid.body !== undefined
          ? { body: { ...(valid.body as object), description: 'z' } }
          : {}),
        params: operation.method === 'DELETE' ? { id: 'another' } : valid.params,
        headers: { 'idempotency-key': key },
      });
      expect(JSON.parse(answer.body)).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    }
  });

  it('429 once the caller’s window is used up', async () => {
    const limited = await buildTestApp(context.database, {
      env: { ...ENV, WORKER: 'off', RATE_LIMIT_MAX: '1', RATE_LIMIT_IP_MAX: '1' },
      deps: { keyRing: KEYS },
    });
    try {
      for (const operation of documenting('429')) {
        const key = (await createKey(context.database, ['admin'])).key;
        const setUp = (await createKey(context.database, ['admin'])).key;
        // Made through the limited app: its key ring is its own.
        const valid = await validCall(operation, limited, setUp);
        const first = await limited.inject({
          method: operation.method as 'GET',
          url: urlOf(operation, valid),
          headers: bearer(key),
        });
        record(operation, first, `first of two, ${urlOf(operation, valid)}`);
        const answer = await call(operation.id, 429, { ...valid, as: key, app: limited });
        expect(answer.headers['retry-after']).toBeDefined();
      }
    } finally {
      await limited.close();
    }
  });

  it('431 for a request head over MAX_HEADER_BYTES, over a real connection', async () => {
    const served = await buildTestApp(context.database, {
      env: { ...ENV, WORKER: 'off' },
      deps: { keyRing: KEYS },
    });
    try {
      await served.listen({ port: 0, host: '127.0.0.1' });
      const { port } = served.server.address() as AddressInfo;
      for (const operation of documenting('431')) {
        const path = urlOf(operation, await validCall(operation));
        const answer = await new Promise<Answer>((resolve, reject) => {
          const request = httpRequest(
            {
              host: '127.0.0.1',
              port,
              method: operation.method,
              path,
              headers: { 'x-padding': 'x'.repeat(testConfig(ENV).maxHeaderBytes) },
            },
            (response) => {
              let body = '';
              response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
              response.on('end', () =>
                resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, body }),
              );
            },
          );
          request.on('error', reject);
          request.end();
        });
        record(operation, answer);
        expect(answer.statusCode).toBe(431);
      }
    } finally {
      await served.close();
    }
  });

  it('503 from readiness while the database does not answer', async () => {
    // The readiness probe's answer when the database is down, on an app whose database is
    // closed under it; the other operations' 503 is the fault suite's (database-loss.test.ts),
    // checked against the document there when TEST_DATABASE_URL is set.
    const database = await createTestDatabase();
    const broken = await buildTestApp(database, { env: { ...ENV, WORKER: 'off' } });
    try {
      await database.handle.close();
      const answer = await broken.inject({ method: 'GET', url: '/readyz' });
      record(contract.operation('getReadiness'), answer);
      expect(answer.statusCode).toBe(503);
    } finally {
      await broken.close();
      await database.drop().catch(() => undefined);
    }
  });
});

function spoilParameter(operation: Operation, valid: Call): Partial<Call> {
  for (const parameter of operation.parameters) {
    const schema = contract.resolve((parameter.schema ?? {}) as Record<string, unknown>);
    const name = String(parameter.name);
    const bad =
      schema.type === 'integer' || schema.type === 'number'
        ? 'many'
        : Array.isArray(schema.enum)
          ? 'none-of-these'
          : typeof schema.maxLength === 'number' && schema.maxLength < 1_024
            ? 'x'.repeat(schema.maxLength + 1)
            : typeof schema.pattern === 'string'
              ? 'a\u0000b'
              : undefined;
    if (bad === undefined || name === 'if-none-match') continue;
    if (parameter.in === 'path') return { params: { ...valid.params, [name]: bad } };
    if (parameter.in === 'query') return { query: { [name]: bad } };
    if (parameter.in === 'header') return { headers: { [name]: bad } };
  }
  throw new Error(`${operation.id}: no parameter to spoil`);
}

it('saw every documented status of every operation, and every answer met the document', () => {
  expect(problems).toEqual([]);
  const documented = contract.operations.flatMap((operation) =>
    Object.keys(operation.responses).map((status) => `${operation.id} ${status}`),
  );
  // The 503 of an operation that needs the database while it is away, and the 504 of a write
  // whose commit was never confirmed, are the fault suite's (test/integration/postgres/): they
  // need a connection that can be cut or hung.
  const outage = (pair: string) =>
    pair.endsWith(' 504') ||
    (pair.endsWith(' 503') && contract.operation(pair.split(' ')[0] ?? '').authenticated);
  const missing = documented.filter(
    (pair) => !seen.has(pair) && !(pair in NOT_PROVOKED) && !outage(pair),
  );
  expect(missing).toEqual([]);
  // The list of exceptions stays exact: nothing in it is undocumented, or provoked after all.
  expect(
    Object.keys(NOT_PROVOKED).filter((pair) => !documented.includes(pair) || seen.has(pair)),
  ).toEqual([]);
});
