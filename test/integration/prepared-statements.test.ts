import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStatement, type Statement } from '../../src/db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/app.js';

/*
 * Prepared statements are named by what they do plus a hash of their text: a statement whose
 * text changed, or two statements given the same name by mistake, never collide on a connection
 * (PostgreSQL's driver refuses a second text under a name the connection has prepared).
 */
describe('runStatement', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('runs two texts given the same name on one connection, each with its own answer', async () => {
    const first: Statement = { name: 'fido_test_same_name', text: 'select $1::int + 1 as n' };
    const second: Statement = { name: 'fido_test_same_name', text: 'select $1::int * 10 as n' };
    const { db } = database.handle;
    const answers = await db.transaction(async (dbTx) => [
      ...(await runStatement<{ n: number }>(dbTx, first, [4])),
      ...(await runStatement<{ n: number }>(dbTx, second, [4])),
      ...(await runStatement<{ n: number }>(dbTx, first, [5])),
    ]);
    expect(answers.map((row) => Number(row.n))).toEqual([5, 40, 6]);
  });
});
