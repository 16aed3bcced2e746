import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../helpers/app.js';

let database: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildTestApp(database);
});

afterAll(async () => {
  await app.close();
  await database.drop();
});

it('the committed openapi.json is what the app serves (regenerate: npm run openapi)', async () => {
  const committed: unknown = JSON.parse(await readFile('openapi.json', 'utf8'));
  const served = await app.inject({ method: 'GET', url: '/openapi.json' });
  expect(served.json()).toEqual(committed);
});
