import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import openapiTS, { astToString } from 'openapi-typescript';
import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { createKey, REQUIRED_AUTH_ENV } from '../helpers/auth.js';
import { docsExamples } from '../client/examples.js';

/*
 * A client generated from the served document: its types (test/client/fido-api.d.ts) are what
 * openapi-typescript makes of the document today, the docs' examples written against them
 * type-check (`npm run typecheck`), and they work against a real server.
 */

const context = useTestApp({ env: REQUIRED_AUTH_ENV });

it('the committed client types are generated from the served document (npm run client:types)', async () => {
  const served = await context.app.inject({ method: 'GET', url: '/openapi.json' });
  const generated = astToString(await openapiTS(served.json()));
  const committed = await readFile('test/client/fido-api.d.ts', 'utf8');
  // The committed file adds openapi-typescript's "auto-generated" banner before the types.
  expect(committed.endsWith(generated)).toBe(true);
});

it("runs the docs' examples through the typed client against a real server", async () => {
  const { key } = await createKey(context.database, ['admin']);
  await context.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = context.app.server.address() as AddressInfo;
  const results = await docsExamples(`http://127.0.0.1:${port}`, key);
  expect(results).toEqual({
    welcomeMessage: 'Welcome to Fido Transactions API',
    created: 201,
    replayed: 'true',
    sameId: true,
    amount: 100.5,
    pages: [200, 200],
    filtered: 1,
    updated: 2,
    staleCode: 'PRECONDITION_FAILED',
    net: 120.75,
    range: 1,
    deleted: expect.stringMatching(/^Transaction with ID: .+ removed$/),
    again: 'TRANSACTION_NOT_FOUND',
  });
});
