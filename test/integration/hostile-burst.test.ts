import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { postTransaction, useTestApp } from '../helpers/app.js';
import { REQUIRED_AUTH_ENV, TEST_JWT_SECRET } from '../helpers/auth.js';
import { transactionBody } from '../helpers/factories.js';

/*
 * The fault suite's hostile burst (issue 12): about 2,000 requests built from the defects an
 * adversarial pass found (NUL and lone surrogates in every kind of input, U+2028 metadata keys,
 * deep nesting with and without an Idempotency-Key, bytes that are not UTF-8, odd JWT subjects,
 * odd content types and methods), in-process (inject), bounded and seeded: a failure prints the
 * seed, and HOSTILE_SEED replays it. Never a 5xx, always the JSON error shape, still alive after.
 */

const REQUESTS = 2_000;
const CONCURRENCY = 40;
// Tests read their seed here, not config: this is the test's own input, not the service's.
const SEED = Number(process.env.HOSTILE_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: a small seeded generator, so a failing burst can be replayed exactly. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const HOSTILE_TEXT = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\u2028',
  '\u2029',
  '\r\n',
  '../../etc/passwd',
  "' or 1=1 --",
  '%00',
  '𝕏'.repeat(200),
  'x'.repeat(5_000),
  '',
];
const HOSTILE_NUMBERS = [-1, 0, 1e308, -1e308, 1.0000000000000002, 9007199254740991, 0.001];

/**
 * Percent-encodes `text` as a client could send it: a lone surrogate (which encodeURIComponent
 * refuses) as its three WTF-8 bytes.
 */
function encode(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (char.length === 1 && code >= 0xd800 && code <= 0xdfff) {
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((byte) => `%${byte.toString(16).toUpperCase()}`)
        .join('');
    } else {
      out += encodeURIComponent(char);
    }
  }
  return out;
}

interface HostileRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE' | 'OPTIONS';
  url: string;
  headers?: Record<string, string>;
  payload?: string | Buffer;
}

describe('a burst of hostile requests', () => {
  const ctx = useTestApp({
    env: { ...REQUIRED_AUTH_ENV, CORS_ORIGINS: 'https://app.example.com' },
  });

  it(`answers ${REQUESTS} of them without a 5xx, in the error shape, and stays up (seed printed)`, async () => {
    const next = random(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const token = (sub: unknown) =>
      new SignJWT({ sub } as Record<string, unknown>)
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    const owner = 'burst-owner';
    const ownerToken = await token(owner);
    const existing = await postTransaction(ctx.app, { user_id: owner }).catch(() => undefined);
    const auth = { authorization: `Bearer ${ownerToken}` };

    const builders: (() => Promise<HostileRequest> | HostileRequest)[] = [
      () => ({
        method: 'GET',
        url: `/api/v1/analytics/${encode(pick(HOSTILE_TEXT))}`,
        headers: auth,
      }),
      () => ({
        method: 'GET',
        url: `/api/v1/transaction/history/${encode(pick(HOSTILE_TEXT))}?cursor=${encode(pick(HOSTILE_TEXT))}`,
        headers: auth,
      }),
      () => ({
        method: pick(['GET', 'DELETE'] as const),
        url: `/api/v1/transaction/${encode(pick(HOSTILE_TEXT))}`,
        headers: auth,
      }),
      () => ({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: JSON.stringify(
          transactionBody({
            user_id: owner,
            full_name: pick(HOSTILE_TEXT),
            description: pick(HOSTILE_TEXT),
            metadata: {
              [`k${pick(HOSTILE_TEXT)}`]: next() < 0.5 ? pick(HOSTILE_TEXT) : { deep: [1] },
            },
            transaction_amount: pick<unknown>([
              ...HOSTILE_NUMBERS,
              ...HOSTILE_TEXT,
              null,
              true,
              [],
            ]),
          }),
        ),
      }),
      () => {
        const depth = 10 + Math.floor(next() * 20_000);
        return {
          method: pick(['POST', 'PATCH'] as const),
          url: existing ? `/api/v1/transaction/${existing.id}` : '/api/v1/transaction/',
          headers: {
            ...auth,
            'content-type': 'application/json',
            ...(next() < 0.5 ? { 'idempotency-key': `burst-${Math.floor(next() * 1e9)}` } : {}),
          },
          payload: `{"description":"x","junk":${'['.repeat(depth)}${']'.repeat(depth)}}`,
        };
      },
      () => {
        const bytes = Buffer.from(
          JSON.stringify(transactionBody({ user_id: owner, description: 'ab' })),
        );
        const at = bytes.indexOf('"ab"') + 1;
        bytes[at] = pick([0xff, 0xc0, 0xed, 0x80]);
        return {
          method: 'POST',
          url: '/api/v1/transaction/',
          headers: { ...auth, 'content-type': 'application/json' },
          payload: bytes,
        };
      },
      async () => ({
        method: 'GET',
        url: `/api/v1/transaction/history/${owner}`,
        headers: {
          authorization: `Bearer ${await token(pick<unknown>([[owner], [owner, 'b'], 123, true, {}, '', null]))}`,
        },
      }),
      () => ({
        method: pick(['GET', 'DELETE'] as const),
        url: `/api/v1/api-keys/${encode(pick(HOSTILE_TEXT))}`,
        headers: auth,
      }),
      () => ({
        method: 'GET',
        url: `/api/v1/api-keys?cursor=${encode(pick(HOSTILE_TEXT))}`,
        headers: { authorization: `Bearer ${pick(['fido_x_y', 'garbage', 'a'.repeat(4_000)])}` },
      }),
      () => ({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: {
          ...auth,
          'content-type': pick([
            'text/plain',
            'application/xml',
            'application/json; charset=latin1',
            '',
          ]),
        },
        payload: pick(HOSTILE_TEXT),
      }),
      () => ({
        method: 'OPTIONS',
        url: '/api/v1/transaction/',
        headers: pick<Record<string, string>>([
          { 'access-control-request-method': 'POST' },
          { origin: 'https://x' },
        ]),
      }),
      () => ({
        method: pick(['PUT', 'PATCH'] as const),
        url: `/api/v1/webhooks/${encode(pick(HOSTILE_TEXT))}`,
        headers: { ...auth, 'content-type': 'application/json' },
        payload: JSON.stringify({
          url: pick([
            'http://localhost./x',
            'http://metadata.google.internal/',
            'ftp://x',
            pick(HOSTILE_TEXT),
          ]),
        }),
      }),
    ];

    const failures: string[] = [];
    for (let sent = 0; sent < REQUESTS; sent += CONCURRENCY) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(CONCURRENCY, REQUESTS - sent) }, async () => {
          const request = await pick(builders)();
          const response = await ctx.app.inject(request);
          return { request, response };
        }),
      );
      for (const { request, response } of batch) {
        const described = `${request.method} ${request.url.slice(0, 120)} -> ${response.statusCode}`;
        if (response.statusCode >= 500)
          failures.push(`${described}: ${response.body.slice(0, 200)}`);
        if (response.statusCode >= 400) {
          const body = (() => {
            try {
              return response.json<{ name?: string }>();
            } catch {
              return undefined;
            }
          })();
          if (body?.name !== 'FidoTransactionsAPI')
            failures.push(`${described}: not the error shape`);
        }
      }
    }
    expect(failures, `HOSTILE_SEED=${SEED}`).toEqual([]);
    expect((await ctx.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await ctx.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  }, 300_000);
});
