import { expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import { bearer, createAs, createKey, REQUIRED_AUTH_ENV, userToken } from '../../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../../helpers/factories.js';

/*
 * Ownership under real concurrency (PostgreSQL only: PGlite runs one transaction at a time).
 * Users fire updates and deletes at each other's transactions and their own, all at once. Each
 * user writes amounts from a range of its own, so whatever interleaving happened, a stored
 * amount outside its owner's range, or a transaction gone without its owner's delete, would be
 * another user's write getting through.
 */

const context = useTestApp({ env: REQUIRED_AUTH_ENV });
const USERS = 4;
const PER_USER = 5;
const ATTEMPTS = 120;

it('concurrent writes through user tokens only ever change the writer’s own data', async () => {
  const { app, database } = context;
  const admin = (await createKey(database, ['admin'])).key;
  const users = Array.from({ length: USERS }, () => uniqueUserId('race'));
  const tokens = await Promise.all(users.map((id) => userToken(id)));
  const owner = new Map<string, number>();
  for (const [index, userId] of users.entries()) {
    for (let i = 0; i < PER_USER; i += 1) {
      const row = await createAs(
        app,
        admin,
        transactionBody({ user_id: userId, transaction_amount: index * 1000 + 1 }),
      );
      owner.set(row.id, index);
    }
  }
  const ids = [...owner.keys()];
  const deletedByOwner = new Set<string>();
  let strangerSuccesses = 0;

  await Promise.all(
    Array.from({ length: ATTEMPTS }, async (_, n) => {
      const actor = n % USERS;
      const id = ids[(n * 7 + Math.floor(n / USERS)) % ids.length]!;
      const mine = owner.get(id) === actor;
      const response =
        n % 5 === 0
          ? await app.inject({
              method: 'DELETE',
              url: `/api/v1/transaction/${id}`,
              headers: bearer(tokens[actor]!),
            })
          : await app.inject({
              method: 'PATCH',
              url: `/api/v1/transaction/${id}`,
              headers: bearer(tokens[actor]!),
              payload: { transaction_amount: actor * 1000 + 1 + (n % 999) },
            });
      if (!mine && response.statusCode !== 404) strangerSuccesses += 1;
      if (mine) expect([200, 404]).toContain(response.statusCode);
      if (mine && n % 5 === 0 && response.statusCode === 200) deletedByOwner.add(id);
    }),
  );

  expect(strangerSuccesses).toBe(0);
  for (const [index, userId] of users.entries()) {
    const response = await app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}`,
      headers: bearer(admin),
    });
    const rows =
      response.statusCode === 404
        ? []
        : (response.json().data as { id: string; transaction_amount: number }[]);
    for (const row of rows) {
      expect(owner.get(row.id)).toBe(index);
      expect(row.transaction_amount).toBeGreaterThan(index * 1000);
      expect(row.transaction_amount).toBeLessThan((index + 1) * 1000);
    }
    const expected = ids.filter((id) => owner.get(id) === index && !deletedByOwner.has(id));
    expect(rows.map((row) => row.id).sort()).toEqual(expected.sort());
  }
});
