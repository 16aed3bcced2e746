import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { uniqueUserId } from '../helpers/factories.js';

const MAX = 5;
const IP_MAX = 3;
const context = useTestApp({
  env: {
    ...REQUIRED_AUTH_ENV,
    RATE_LIMIT_MAX: String(MAX),
    RATE_LIMIT_IP_MAX: String(IP_MAX),
    RATE_LIMIT_WINDOW_SECONDS: '3600',
  },
});

/** Sends `count` requests and returns their statuses and the last response. */
async function burst(count: number, headers: Record<string, string>, remoteAddress = '10.0.0.1') {
  const statuses: number[] = [];
  let last: LightMyRequestResponse | undefined;
  for (let i = 0; i < count; i += 1) {
    last = await context.app.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/nobody',
      headers,
      remoteAddress,
    });
    statuses.push(last.statusCode);
  }
  if (!last) throw new Error('no request sent');
  return { statuses, last };
}

describe('rate limits', () => {
  it('lets exactly RATE_LIMIT_MAX requests of one key through in the window, then 429', async () => {
    const { key } = await createKey(context.database, ['transactions:read']);
    const first = await context.app.inject({
      method: 'GET',
      url: '/api/v1/transaction/history/nobody',
      headers: bearer(key),
    });
    expect(first.statusCode).toBe(404);
    expect(first.headers).toMatchObject({
      'ratelimit-limit': String(MAX),
      'ratelimit-remaining': String(MAX - 1),
      'ratelimit-policy': `${MAX};w=3600`,
    });
    expect(Number(first.headers['ratelimit-reset'])).toBeGreaterThan(3500);

    const { statuses, last } = await burst(MAX, bearer(key));
    expect(statuses).toEqual([404, 404, 404, 404, 429]);
    expect(last.json()).toMatchObject({ code: 'RATE_LIMITED', name: 'FidoTransactionsAPI' });
    expect(last.headers['ratelimit-remaining']).toBe('0');
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(3500);

    // Another key has its own allowance.
    const other = await createKey(context.database, ['transactions:read']);
    expect((await burst(1, bearer(other.key))).statuses).toEqual([404]);
  });

  it('counts a user token per user, whichever token of that user is sent', async () => {
    const userId = uniqueUserId();
    const tokens = await Promise.all(Array.from({ length: MAX + 1 }, () => userToken(userId)));
    const statuses: number[] = [];
    for (const token of tokens) {
      const response = await context.app.inject({
        method: 'GET',
        url: `/api/v1/transaction/history/${userId}`,
        headers: bearer(token),
      });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([404, 404, 404, 404, 404, 429]);
  });

  it('counts requests without valid credentials per IP, so guessing keys is slow', async () => {
    const wrong = bearer('fido_aaaaaaaaaaaaaaaa_' + 'A'.repeat(43));
    const { statuses, last } = await burst(IP_MAX + 1, wrong, '10.9.9.9');
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect(last.headers['retry-after']).toBeDefined();
    // Without any credentials from the same address: the same allowance, already spent.
    expect((await burst(1, {}, '10.9.9.9')).statuses).toEqual([429]);
    // Another address is unaffected.
    expect((await burst(1, {}, '10.9.9.10')).statuses).toEqual([401]);
  });

  it('never limits the public routes (probes, docs)', async () => {
    for (let i = 0; i < IP_MAX * 3; i += 1) {
      const response = await context.app.inject({
        method: 'GET',
        url: '/healthz',
        remoteAddress: '10.7.7.7',
      });
      expect(response.statusCode).toBe(200);
      expect(response.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});
