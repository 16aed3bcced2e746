import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { Contract, type Answer, type Json, type Operation } from '../helpers/contract.js';
import { transactionBody } from '../helpers/factories.js';
import { arbitraryFor } from '../helpers/schema-arbitrary.js';

/**
 * Schema-driven fuzzing, generated from the served OpenAPI document: for every operation, requests
 * the document says are valid, and requests with one field broken (its type, its length, a NUL, a
 * lone surrogate, U+2028, bytes that are not UTF-8, nesting thousands deep, numbers no double
 * holds). Whatever comes in, the server must answer without a 5xx, with a status the document
 * lists for that operation, a body its schema accepts and only headers it announces, and still be
 * serving afterwards.
 *
 * Bounded and reproducible: FUZZ_RUNS requests of each kind per operation (default 40, about
 * 2,100 requests in all), drawn from FUZZ_SEED (printed at the start; set it to replay a run
 * exactly, or to `random` to explore).
 */

/** Fixed by default, so CI is reproducible; `FUZZ_SEED=random` draws a new one (printed). */
const SEED =
  process.env.FUZZ_SEED === 'random'
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(process.env.FUZZ_SEED ?? 20_261_207);
const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
/** Deeper than any parser's or validator's recursion should be asked to go. */
const NESTING_DEPTH = 10_000;

const context = useTestApp({
  env: { ...REQUIRED_AUTH_ENV, RATE_LIMIT_MAX: '1000000', RATE_LIMIT_IP_MAX: '1000000' },
});

interface Fixtures {
  credentials: Record<string, string | undefined>;
  /** Values for path parameters that name things that exist. */
  known: Record<string, string[]>;
}

let contract: Contract;
let fixtures: Fixtures;

beforeAll(async () => {
  console.info(`fuzz: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}`);
  contract = await Contract.load(context.app);
  const admin = await createKey(context.database, ['admin']);
  const reader = await createKey(context.database, ['transactions:read']);
  // The fuzzing may revoke a key whose id it is given: never the one it works with.
  const disposable = await createKey(context.database, ['analytics:read']);
  const userId = 'fuzz-user';
  const created = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction',
    headers: bearer(admin.key),
    payload: transactionBody({ user_id: userId }),
  });
  expect(created.statusCode).toBe(201);
  const webhook = await context.app.inject({
    method: 'POST',
    url: '/api/v1/webhooks',
    headers: bearer(admin.key),
    payload: { url: 'https://hooks.example.com/fido' },
  });
  expect(webhook.statusCode).toBe(201);
  fixtures = {
    credentials: {
      admin: admin.key,
      reader: reader.key,
      user: await userToken(userId),
      none: undefined,
      forged: 'fido_notakey_000000000000000000000000',
    },
    known: {
      id: [created.json().data.id, webhook.json().data.id, disposable.id],
      user_id: [userId],
    },
  };
});

/** One request, as sent: the body is raw bytes so that broken JSON and UTF-8 can be sent too. */
interface FuzzRequest {
  operation: Operation;
  path: Record<string, string>;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: Buffer | undefined;
  credential: string;
  mutation: string;
}

type Slot = { in: 'path' | 'query' | 'header'; name: string } | { in: 'body'; name: string };

const paramsOf = (operation: Operation, where: string) =>
  operation.parameters.filter((p) => p.in === where);

function bodySchemaOf(operation: Operation): Json | undefined {
  const content = operation.requestBody?.content as Record<string, Json> | undefined;
  return content?.['application/json']?.schema as Json | undefined;
}

/** A valid request for `operation`, by the document. */
function validRequest(operation: Operation): fc.Arbitrary<FuzzRequest> {
  const resolve = (schema: Json) => contract.resolve(schema);
  const params = (where: string, required: boolean) =>
    fc.record(
      Object.fromEntries(
        paramsOf(operation, where).map((p) => {
          // `.` and `..` (even as %2E) are dot segments no URL can carry as a value: a client
          // resolves them away (RFC 3986 5.2.4, WHATWG URL) before the server sees them.
          const generated = arbitraryFor(p.schema as Json, resolve)
            .map(String)
            .filter((value) => where !== 'path' || !/^\.{1,2}$/.test(value));
          const known = fixtures.known[String(p.name)];
          return [
            String(p.name),
            known ? fc.oneof(fc.constantFrom(...known), generated) : generated,
          ];
        }),
      ),
      required
        ? {}
        : {
            requiredKeys: paramsOf(operation, where)
              .filter((p) => p.required)
              .map((p) => String(p.name)),
          },
    ) as fc.Arbitrary<Record<string, string>>;
  const bodySchema = bodySchemaOf(operation);
  const body = bodySchema
    ? arbitraryFor(bodySchema, resolve).map((value) => Buffer.from(JSON.stringify(value)))
    : fc.constant(undefined);
  const credential = operation.authenticated
    ? fc.constantFrom('admin', 'admin', 'admin', 'admin', 'user', 'reader', 'none', 'forged')
    : fc.constant('none');
  return fc
    .record({
      path: params('path', true),
      query: params('query', false),
      headers: params('header', false),
      body,
      credential,
    })
    .map((parts) => ({ operation, ...parts, mutation: 'none' }));
}

/** The values one field is broken with; raw JSON text where JSON.stringify could not say it. */
const BODY_MUTATIONS: Record<string, fc.Arbitrary<string>> = {
  type: fc.constantFrom('123', 'true', 'null', '{}', '[]', '"text"', '-1', '0'),
  length: fc.integer({ min: 1_000, max: 70_000 }).map((n) => JSON.stringify('x'.repeat(n))),
  nul: fc.constant('"a\\u0000b"'),
  'lone surrogate': fc.constantFrom('"\\ud800"', '"x\\udfff"', '"\\udc00\\ud800"'),
  'U+2028': fc.constant('"a\\u2028b\\u2029c"'),
  'nested deep': fc.constantFrom(
    `${'['.repeat(NESTING_DEPTH)}${']'.repeat(NESTING_DEPTH)}`,
    `${'{"a":'.repeat(NESTING_DEPTH)}1${'}'.repeat(NESTING_DEPTH)}`,
  ),
  'huge number': fc.constantFrom('1e400', '-1e400', '1e-400', '18446744073709551616', '1e308'),
  'metadata key': fc.constantFrom(
    '{"a\\u2028b":{"deep":["x"]}}',
    '{"\\u0000":"x"}',
    `{"k":${JSON.stringify('v'.repeat(40_000))}}`,
    '{"\\u2029":"\\u0000"}',
  ),
};

/** Text for a path, query or header value; `%`-escapes are sent as they are. */
const TEXT_MUTATIONS: Record<string, fc.Arbitrary<string>> = {
  type: fc.constantFrom('true', '-1', '1e400', '', '[]', '{}', '0'),
  length: fc.integer({ min: 129, max: 1_020 }).map((n) => 'x'.repeat(n)),
  nul: fc.constant('a\u0000b'),
  'lone surrogate': fc.constant('%ED%A0%80'),
  'U+2028': fc.constant('a\u2028b'),
  'bad UTF-8': fc.constantFrom('%FF', '%C3%28', '%E2%82'),
};

const HEADER_MUTATIONS: Record<string, fc.Arbitrary<string>> = {
  type: fc.constantFrom('true', '-1', '[]', '*'),
  length: fc.integer({ min: 256, max: 4_000 }).map((n) => 'x'.repeat(n)),
  'not ASCII': fc.constant('caf\u00e9'),
};

function slotsOf(operation: Operation): Slot[] {
  const slots: Slot[] = operation.parameters.map((p) => ({
    in: p.in as 'path' | 'query' | 'header',
    name: String(p.name),
  }));
  const schema = bodySchemaOf(operation);
  if (schema) {
    const properties = (contract.resolve(schema).properties ?? {}) as Record<string, unknown>;
    slots.push({ in: 'body', name: '' });
    for (const name of Object.keys(properties)) slots.push({ in: 'body', name });
  }
  return slots;
}

/** A request the document says is valid, with one field broken. */
function mutatedRequest(operation: Operation): fc.Arbitrary<FuzzRequest> | undefined {
  const slots = slotsOf(operation);
  if (slots.length === 0) return undefined;
  return fc.tuple(validRequest(operation), fc.constantFrom(...slots)).chain(([request, slot]) => {
    const table =
      slot.in === 'body'
        ? BODY_MUTATIONS
        : slot.in === 'header'
          ? HEADER_MUTATIONS
          : TEXT_MUTATIONS;
    return fc
      .constantFrom(...Object.keys(table))
      .chain((kind) => (table[kind] as fc.Arbitrary<string>).map((value) => ({ kind, value })))
      .map(({ kind, value }) => mutate(request, slot, kind, value));
  });
}

function mutate(request: FuzzRequest, slot: Slot, kind: string, value: string): FuzzRequest {
  const mutation = `${slot.in}${slot.name ? `.${slot.name}` : ''}: ${kind}`;
  if (slot.in === 'path')
    return { ...request, path: { ...request.path, [slot.name]: value }, mutation };
  if (slot.in === 'query') {
    return { ...request, query: { ...request.query, [slot.name]: value }, mutation };
  }
  if (slot.in === 'header') {
    return { ...request, headers: { ...request.headers, [slot.name]: value }, mutation };
  }
  if (slot.name === '') return { ...request, body: Buffer.from(value), mutation };
  // The field's value replaced inside the JSON text; a marker keeps raw text (1e400, bad UTF-8)
  // from being re-encoded on the way.
  const marker = '__fuzz_marker__';
  const parsed = JSON.parse(request.body?.toString('utf8') ?? '{}') as Json;
  const text = JSON.stringify({ ...parsed, [slot.name]: marker });
  return {
    ...request,
    body: Buffer.from(text.replace(`"${marker}"`, value)),
    mutation,
  };
}

/** Bytes that are not UTF-8, inside a string field of a valid body. */
function badUtf8Body(request: FuzzRequest): FuzzRequest | undefined {
  if (!request.body) return undefined;
  const text = request.body.toString('utf8');
  const at = text.indexOf('":"');
  if (at < 0) return undefined;
  const cut = at + 3;
  return {
    ...request,
    body: Buffer.concat([
      Buffer.from(text.slice(0, cut)),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from(text.slice(cut)),
    ]),
    mutation: 'body: bad UTF-8',
  };
}

function urlOf(request: FuzzRequest): string {
  const path = request.operation.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = request.path[name] ?? '';
    // %-escapes meant to stay raw (bad UTF-8) are sent as they are; the rest is encoded.
    return /^(%[0-9A-F]{2})+$/.test(value) ? value : encodeURIComponent(value);
  });
  const query = Object.entries(request.query)
    .map(([name, value]) => {
      const encoded = /^(%[0-9A-F]{2})+$/.test(value) ? value : encodeURIComponent(value);
      return `${encodeURIComponent(name)}=${encoded}`;
    })
    .join('&');
  return query ? `${path}?${query}` : path;
}

async function send(request: FuzzRequest): Promise<Answer> {
  const credential = fixtures.credentials[request.credential];
  const headers: Record<string, string> = {
    ...request.headers,
    ...(credential ? bearer(credential) : {}),
  };
  if (request.body) headers['content-type'] = 'application/json';
  const response = await context.app.inject({
    method: request.operation.method as 'GET',
    url: urlOf(request),
    headers,
    ...(request.body ? { payload: request.body } : {}),
  });
  return { statusCode: response.statusCode, headers: response.headers, body: response.body };
}

function describeRequest(request: FuzzRequest): string {
  const body = request.body?.toString('utf8') ?? '';
  return (
    `${request.operation.method} ${urlOf(request).slice(0, 160)} as ${request.credential} ` +
    `[${request.mutation}] headers ${JSON.stringify(request.headers).slice(0, 120)} ` +
    `body ${body.length > 160 ? `${body.slice(0, 160)}… (${body.length} bytes)` : body}`
  );
}

it(
  'answers every generated request with a documented status, body and headers, never a 5xx',
  { timeout: 900_000 },
  async () => {
    const findings = new Map<string, string[]>();
    let sent = 0;
    const statuses = new Map<string, number>();
    for (const [index, operation] of contract.operations.entries()) {
      const seed = SEED + index;
      const requests = fc.sample(validRequest(operation), { seed, numRuns: RUNS });
      const mutated = mutatedRequest(operation);
      if (mutated) requests.push(...fc.sample(mutated, { seed: seed + 1_000, numRuns: RUNS }));
      const withBadBytes = requests.slice(0, 5).map(badUtf8Body).filter(Boolean) as FuzzRequest[];
      for (const request of [...requests, ...withBadBytes]) {
        const answer = await send(request);
        sent += 1;
        const tally = `${operation.id} ${answer.statusCode}`;
        statuses.set(tally, (statuses.get(tally) ?? 0) + 1);
        const problems = [
          ...(answer.statusCode >= 500 ? [`${operation.id} ${answer.statusCode}: a 5xx`] : []),
          ...contract.problems(operation, answer),
        ];
        for (const problem of problems) {
          // One example per kind of problem: the first request that showed it.
          const kind = problem.replace(/\(body .*$/s, '').slice(0, 200);
          if (!findings.has(kind)) findings.set(kind, [problem, describeRequest(request)]);
        }
      }
    }
    console.info(
      `fuzz: ${sent} requests; ${[...statuses].map(([k, n]) => `${k}×${n}`).join(', ')}`,
    );
    // Still serving, and still writing: nothing the fuzzing sent has broken the server.
    const alive = await context.app.inject({ method: 'GET', url: '/healthz' });
    expect(alive.statusCode).toBe(200);
    const write = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction',
      headers: bearer(String(fixtures.credentials.admin)),
      payload: transactionBody(),
    });
    expect(write.statusCode).toBe(201);
    expect(sent).toBeGreaterThan(contract.operations.length * RUNS);
    const report = [...findings.values()].map(([problem, request]) => `${problem}\n    ${request}`);
    expect(report, `FUZZ_SEED=${SEED}: ${report.length} kinds of problem`).toEqual([]);
  },
);
