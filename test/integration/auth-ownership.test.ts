import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { bearer, createAs, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

/*
 * "As if it did not exist": what a user token gets for another user's data is, word for word,
 * what it gets for data that does not exist (only the id or user id in the message differs,
 * being the one asked about).
 */

const context = useTestApp({ env: REQUIRED_AUTH_ENV });

/** Status, code and message with the asked-about id made generic, and no request id. */
function shape(response: LightMyRequestResponse, asked: string) {
  const body = response.json();
  return {
    status: response.statusCode,
    code: body.code,
    message: String(body.message).replaceAll(asked, '<asked>'),
    headers: Object.keys(response.headers)
      .filter((name) => !['x-request-id', 'date', 'content-length'].includes(name))
      .sort(),
  };
}

describe('another user’s data looks exactly like missing data', () => {
  it('for a transaction: read, update, delete', async () => {
    const { app, database } = context;
    const admin = (await createKey(database, ['admin'])).key;
    const victim = uniqueUserId('victim');
    const theirs = await createAs(app, admin, transactionBody({ user_id: victim }));
    const token = await userToken(uniqueUserId('curious'));
    const missing = randomUUID();
    for (const [method, payload] of [
      ['GET', undefined],
      ['PATCH', { transaction_amount: 1 }],
      ['PUT', { description: 'mine now' }],
      ['DELETE', undefined],
    ] as const) {
      const send = (id: string) =>
        app.inject({
          method,
          url: `/api/v1/transaction/${id}`,
          headers: bearer(token),
          ...(payload ? { payload } : {}),
        });
      const other = await send(theirs.id);
      const absent = await send(missing);
      expect(other.statusCode, method).toBe(404);
      expect(shape(other, theirs.id)).toEqual(shape(absent, missing));
    }
    // And nothing changed.
    const after = await app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${theirs.id}`,
      headers: bearer(admin),
    });
    expect(after.json().data).toMatchObject({ version: 1, transaction_amount: 100 });
  });

  it('for a history and analytics', async () => {
    const { app, database } = context;
    const admin = (await createKey(database, ['admin'])).key;
    const victim = uniqueUserId('victim');
    await createAs(app, admin, transactionBody({ user_id: victim }));
    const nobody = uniqueUserId('nobody');
    const token = await userToken(uniqueUserId('curious'));
    for (const path of ['transaction/history', 'analytics', 'analytics/range']) {
      const send = (userId: string) =>
        app.inject({ method: 'GET', url: `/api/v1/${path}/${userId}`, headers: bearer(token) });
      const other = await send(victim);
      expect(other.statusCode, path).toBe(404);
      expect(shape(other, victim)).toEqual(shape(await send(nobody), nobody));
    }
  });

  it('for routes only service keys use', async () => {
    const token = await userToken(uniqueUserId());
    const keys = await context.app.inject({
      method: 'GET',
      url: '/api/v1/api-keys',
      headers: bearer(token),
    });
    const unknown = await context.app.inject({
      method: 'GET',
      url: '/api/v1/no-such-thing',
      headers: bearer(token),
    });
    expect(keys.statusCode).toBe(404);
    expect(shape(keys, '/api/v1/api-keys')).toEqual(shape(unknown, '/api/v1/no-such-thing'));
  });
});
