import { readFile } from 'node:fs/promises';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { portablePattern } from '../../src/platform/openapi-document.js';

const context = useTestApp();

async function served(): Promise<Record<string, unknown>> {
  const response = await context.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  return response.json();
}

type Operations = [string, string, Record<string, unknown>][];
function operations(document: Record<string, unknown>): Operations {
  const paths = document.paths as Record<string, Record<string, Record<string, unknown>>>;
  return Object.entries(paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]): Operations[number] => [
      path,
      method,
      operation,
    ]),
  );
}

it('the committed openapi.json is what the app serves (regenerate: npm run openapi)', async () => {
  const committed: unknown = JSON.parse(await readFile('openapi.json', 'utf8'));
  expect(await served()).toEqual(committed);
});

it("passes Redocly's recommended ruleset with no errors and no warnings", async () => {
  const problems = await lintFromString({
    source: JSON.stringify(await served()),
    absoluteRef: '/openapi.json',
    config: await createConfig({ extends: ['recommended'] }),
  });
  const found = problems.map(
    (p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`,
  );
  expect(found).toEqual([]);
});

describe('every operation', () => {
  it('has a unique operationId, and public ones say so with `security: []`', async () => {
    const ids = new Set<string>();
    for (const [path, method, operation] of operations(await served())) {
      expect(operation.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z0-9]+$/);
      expect(ids.has(String(operation.operationId)), String(operation.operationId)).toBe(false);
      ids.add(String(operation.operationId));
      expect(operation.security, `${method} ${path}`).toBeInstanceOf(Array);
    }
    expect(ids.size).toBeGreaterThanOrEqual(26);
  });

  it('documents the framework answers: 400/414 with a path parameter, 431 and 503 always', async () => {
    for (const [path, method, operation] of operations(await served())) {
      const statuses = Object.keys(operation.responses as object);
      expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(['431', '503']));
      if (path.includes('{')) {
        expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(['400', '414']));
      }
      const description = JSON.stringify(operation.responses);
      expect(description).not.toContain('Default Response');
    }
  });
});

it('shares the error body and the records through components instead of copying them', async () => {
  const document = await served();
  const text = JSON.stringify(document);
  // The error body is defined once and referred to; the document stays small.
  expect(text.match(/"title":"Error"/g)).toHaveLength(1);
  expect(text.length).toBeLessThan(200_000);
  const schemas = (document.components as { schemas: Record<string, unknown> }).schemas;
  expect(Object.keys(schemas)).toEqual(
    expect.arrayContaining(['Error', 'ValidationError', 'Transaction', 'TransactionResponse']),
  );
});

describe('patterns', () => {
  it('use no \\p{…} class: they mean the same with and without the u flag', async () => {
    expect(JSON.stringify(await served())).not.toMatch(/\\\\[pP]\{/);
  });

  // Every character class the schemas use, with the strings most likely to tell them apart.
  const originals = ['^[^\\p{Cc}\\p{Cs}]*$', '^[^\\u0000\\p{Cs}]*$', '^[^\\p{Cc}\\p{Cs}]{1,128}$'];
  const tricky = fc.constantFrom(
    '\u0000',
    '\u001f',
    '\u007f',
    '\u009f',
    '\u00a0',
    '\u2028',
    '\ud800',
    '\udfff',
    '\ud83d\ude00',
    '\ude00\ud83d',
    'é',
    'a',
  );
  const text = fc.array(fc.oneof(tricky, fc.string({ unit: 'binary', maxLength: 3 })), {
    maxLength: 8,
  });

  it.each(originals)('%s keeps its meaning once rewritten', (original) => {
    const rewritten = portablePattern(original);
    const reference = new RegExp(original, 'u');
    const withU = new RegExp(rewritten, 'u');
    const withoutU = new RegExp(rewritten);
    fc.assert(
      fc.property(text, (parts) => {
        const value = parts.join('');
        const expected = reference.test(value);
        return withU.test(value) === expected && withoutU.test(value) === expected;
      }),
      { numRuns: 2_000, seed: 12 },
    );
  });
});
