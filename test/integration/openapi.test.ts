import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';

const context = useTestApp();

it('the committed openapi.json is what the app serves (regenerate: npm run openapi)', async () => {
  const committed: unknown = JSON.parse(await readFile('openapi.json', 'utf8'));
  const served = await context.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(served.json()).toEqual(committed);
});
