import fc from 'fast-check';
import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { bearer, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

/*
 * Random sequences of users and operations, all through user tokens: whatever the order, a user
 * token never reads or changes another user's data, and always can its own. After each sequence
 * a service key checks the stored data against a model that only the owners' own writes changed.
 */

const context = useTestApp({ env: REQUIRED_AUTH_ENV });
const USERS = 3;

type Op =
  | { op: 'create'; actor: number; owner: number; amount: number }
  | { op: 'read' | 'delete'; actor: number; pick: number }
  | { op: 'update'; actor: number; pick: number; amount: number }
  | { op: 'history' | 'analytics'; actor: number; owner: number };

const user = fc.integer({ min: 0, max: USERS - 1 });
const amount = fc.integer({ min: 1, max: 10_000 });
const pick = fc.nat({ max: 50 });
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('create' as const), actor: user, owner: user, amount }),
  fc.record({ op: fc.constantFrom('read' as const, 'delete' as const), actor: user, pick }),
  fc.record({ op: fc.constant('update' as const), actor: user, pick, amount }),
  fc.record({
    op: fc.constantFrom('history' as const, 'analytics' as const),
    actor: user,
    owner: user,
  }),
);

it('a user token never reads or changes another user’s data', async () => {
  const { app, database } = context;
  const service = (await createKey(database, ['admin'])).key;

  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 12 }), async (ops) => {
      const users = Array.from({ length: USERS }, () => uniqueUserId('prop'));
      const tokens = await Promise.all(users.map((id) => userToken(id)));
      /** The model: transaction id → owner index and amount. */
      const model = new Map<string, { owner: number; amount: number }>();
      const ids = () => [...model.keys()];

      for (const step of ops) {
        const headers = bearer(tokens[step.actor]!);
        if (step.op === 'create') {
          const response = await app.inject({
            method: 'POST',
            url: '/api/v1/transaction/',
            headers,
            payload: transactionBody({
              user_id: users[step.owner],
              transaction_amount: step.amount,
            }),
          });
          if (step.actor === step.owner) {
            expect(response.statusCode, response.body).toBe(201);
            model.set(response.json().data.id, { owner: step.owner, amount: step.amount });
          } else {
            expect(response.statusCode, response.body).toBe(404);
          }
          continue;
        }
        if (step.op === 'history' || step.op === 'analytics') {
          const path = step.op === 'history' ? 'transaction/history' : 'analytics';
          const response = await app.inject({
            method: 'GET',
            url: `/api/v1/${path}/${users[step.owner]}`,
            headers,
          });
          const owned = [...model.values()].filter((t) => t.owner === step.owner);
          if (step.actor !== step.owner || owned.length === 0) {
            expect(response.statusCode, response.body).toBe(404);
          } else if (step.op === 'history') {
            expect(response.statusCode).toBe(200);
            const rows = response.json().data as { user_id: string }[];
            expect(rows).toHaveLength(owned.length);
            for (const row of rows) expect(row.user_id).toBe(users[step.actor]);
          } else {
            expect(response.statusCode).toBe(200);
            expect(response.json().data.transaction_count).toBe(owned.length);
          }
          continue;
        }
        const known = ids();
        if (known.length === 0) continue;
        const id = known[(step as Extract<Op, { pick: number }>).pick % known.length]!;
        const record = model.get(id)!;
        const mine = record.owner === step.actor;
        const url = `/api/v1/transaction/${id}`;
        if (step.op === 'read') {
          const response = await app.inject({ method: 'GET', url, headers });
          expect(response.statusCode, response.body).toBe(mine ? 200 : 404);
          if (mine) expect(response.json().data.transaction_amount).toBe(record.amount);
          else expect(response.body).not.toContain('Ama Owusu');
        } else if (step.op === 'update') {
          const response = await app.inject({
            method: 'PATCH',
            url,
            headers,
            payload: { transaction_amount: step.amount },
          });
          expect(response.statusCode, response.body).toBe(mine ? 200 : 404);
          if (mine) record.amount = step.amount;
        } else {
          const response = await app.inject({ method: 'DELETE', url, headers });
          expect(response.statusCode, response.body).toBe(mine ? 200 : 404);
          if (mine) model.delete(id);
        }
      }

      // The stored truth, read with a service key, is exactly what the owners did.
      for (const [index, userId] of users.entries()) {
        const response = await app.inject({
          method: 'GET',
          url: `/api/v1/transaction/history/${userId}`,
          headers: bearer(service),
        });
        const expected = [...model.entries()]
          .filter(([, t]) => t.owner === index)
          .map(([id, t]) => ({ id, amount: t.amount }))
          .sort((a, b) => a.id.localeCompare(b.id));
        if (expected.length === 0) {
          expect(response.statusCode).toBe(404);
          continue;
        }
        const stored = (response.json().data as { id: string; transaction_amount: number }[])
          .map((row) => ({ id: row.id, amount: row.transaction_amount }))
          .sort((a, b) => a.id.localeCompare(b.id));
        expect(stored).toEqual(expected);
      }
    }),
    { numRuns: 30 },
  );
});
