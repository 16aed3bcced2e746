import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  type TestDatabase,
} from '../helpers/app.js';
import { transactionBody } from '../helpers/factories.js';

const { logger, lines } = captureLogs('trace');
let database: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildTestApp(database, { deps: { logger } });
});

afterAll(async () => {
  await app.close();
  await database.drop();
});

it('logs one line per request with its request id, and never a name', async () => {
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    headers: { 'x-request-id': 'trace-me-1' },
    payload: transactionBody({ full_name: 'Yaa Asantewaa' }),
  });
  expect(created.statusCode).toBe(201);
  const { id } = created.json().data;
  await app.inject({
    method: 'PATCH',
    url: `/api/v1/transaction/${id}`,
    payload: { full_name: 'Nana Yaa Asantewaa' },
  });
  await app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
  await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody({ full_name: 'Yaa Asantewaa', transaction_amount: -1 }),
  });

  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(line).not.toMatch(/Asantewaa/);
  const completed = lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === 'request completed');
  expect(completed).toHaveLength(4);
  expect(completed[0]).toMatchObject({ request_id: 'trace-me-1', status: 201, method: 'POST' });
  for (const entry of completed) expect(entry.request_id).toEqual(expect.any(String));
});
