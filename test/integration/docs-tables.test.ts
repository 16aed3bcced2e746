import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../../src/platform/errors.js';
import { useTestApp } from '../helpers/app.js';

/*
 * The tables of docs/api.md against the code: the route table against the app's own route table
 * (app.accessRoutes: every route with its declared access), the error table against the error
 * catalogue (src/platform/errors.ts). A route or an error code added without its row fails here.
 */

const page = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');

/** The body rows of the markdown table whose header row starts with `header`. */
function tableRows(header: string): string[][] {
  const lines = page.split('\n');
  const start = lines.findIndex((line) => line.startsWith(header));
  if (start === -1) throw new Error(`docs/api.md has no table starting "${header}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  }
  return rows;
}

const codeSpans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);

describe('docs/api.md', () => {
  const ctx = useTestApp();

  it('lists every route with its scope, and no route that does not exist', () => {
    const documented = tableRows('| Method').flatMap(([method = '', paths = '', scope = '']) =>
      codeSpans(paths).map(
        (path) =>
          `${codeSpans(method)[0]} ${path} ${scope === 'public' ? 'public' : codeSpans(scope)[0]}`,
      ),
    );
    const actual = ctx.app.accessRoutes
      // HEAD answers with every GET; Swagger UI's files are one row, /docs/*.
      .filter((route) => route.method !== 'HEAD')
      .map((route) => ({ ...route, url: route.url.startsWith('/docs/') ? '/docs/*' : route.url }))
      .map(
        (route) =>
          `${route.method} ${route.url.replace(/:(\w+)/g, '{$1}')} ${
            route.access === 'public' ? 'public' : route.access.scope
          }`,
      );
    expect([...new Set(documented)].sort()).toEqual([...new Set(actual)].sort());
    expect(documented.length).toBeGreaterThan(20);
  });

  it('lists every error code with its status, and no code that does not exist', () => {
    const documented = tableRows('| Status').flatMap(([status = '', codes = '']) =>
      // Codes, not the settings named in the notes in parentheses.
      codeSpans(codes.replace(/\([^)]*\)/g, ''))
        .filter((code) => /^[A-Z][A-Z_]+$/.test(code))
        .map((code) => `${code} ${status}`),
    );
    const catalogue = Object.entries(ERROR_STATUS).map(([code, status]) => `${code} ${status}`);
    expect(documented.sort()).toEqual(catalogue.sort());
  });
});
