import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '../helpers/app.js';
import {
  capture,
  outputDifferences,
  parseExamples,
  serviceCalls,
  type DocExample,
} from '../helpers/doc-examples.js';
import { finished, REPO_ROOT } from '../helpers/entry.js';
import { freePort } from '../helpers/redis-server.js';
import { EXIT_TIMEOUT_MS, ServerProcess, within } from '../helpers/server-process.js';

/*
 * Every example in the README and docs/ runs here, as a reader would run it: each page against a
 * fresh server of its own (a real process on a real port, started from the sources, open as a
 * new development server is), its sh blocks in order in bash with curl, each answer compared
 * with the block the page shows after it (see test/helpers/doc-examples.ts for the format). On
 * PostgreSQL and Redis when the suite runs there. The server runs with WORKER=off and
 * SCHEDULER=off so that no webhook is actually called and answers do not depend on timing.
 */

const PAGES = [
  'README.md',
  ...readdirSync(path.join(REPO_ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];
const read = (page: string) => readFileSync(path.join(REPO_ROOT, page), 'utf8');

const PAGE_TIMEOUT_MS = 420_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh server for one page; its environment is also the examples' (the CLI shares it). */
async function freshServer(): Promise<{ url: string; env: Record<string, string> }> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'fido-docs-'));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));
  let database: TestDatabase | undefined;
  if (process.env.TEST_DATABASE_URL) {
    database = await createTestDatabase();
    cleanups.push(() => database!.drop());
  }
  const port = String(await freePort());
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: port,
    DATA_DIR: path.join(workDir, 'data'),
    LOG_LEVEL: 'info',
    WORKER: 'off',
    SCHEDULER: 'off',
    ...(database?.url ? { DATABASE_URL: database.url } : {}),
    ...(TEST_REDIS_URL
      ? { REDIS_URL: TEST_REDIS_URL, CACHE_PREFIX: `docs${process.pid}${port}` }
      : {}),
  };
  const server = new ServerProcess(env, workDir);
  cleanups.push(async () => {
    if (server.running) server.child.kill('SIGKILL');
    await within(server.exited, EXIT_TIMEOUT_MS, () => 'the docs server to exit');
  });
  await server.logLine(/^Server listening at/);
  return { url: `http://127.0.0.1:${port}`, env };
}

/** Runs one example in bash; returns what it printed and the variables it exported. */
async function run(
  example: DocExample,
  url: string,
  env: Record<string, string>,
): Promise<{
  code: number | null;
  stdout: string;
  stderr: string;
  exported: Record<string, string>;
}> {
  const exportedNames = [...example.command.matchAll(/\bexport\s+([A-Z_][A-Z0-9_]*)=/g)].map(
    (match) => match[1]!,
  );
  const script = [
    'set -eo pipefail',
    example.command.replace(/(?:http:\/\/)?localhost:8000/g, url),
    ...exportedNames.map((name) => `printf '\\0%s' "$${name}"`),
  ].join('\n');
  const result = await finished(
    spawn('bash', ['-c', script], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const [stdout = '', ...values] = result.stdout.split('\0');
  const exported = Object.fromEntries(exportedNames.map((name, i) => [name, values[i] ?? '']));
  return { ...result, stdout, exported };
}

describe('the docs call the service only in examples that run', () => {
  it.each(PAGES)('%s', (page) => {
    const unmarked = serviceCalls(read(page)).filter((call) => !call.marked);
    expect(
      unmarked.map((call) => `${page}:${call.line}`),
      'a sh block calling the service without <!-- example --> before it',
    ).toEqual([]);
  });
});

describe('the docs examples reproduce, in order, on a fresh server', () => {
  const pages = PAGES.filter((page) => parseExamples(read(page)).length > 0);

  it('there are examples to run', () => {
    expect(pages).toEqual(expect.arrayContaining(['README.md', 'docs/api.md']));
  });

  it.each(pages)(
    '%s',
    async (page) => {
      const examples = parseExamples(read(page));
      const { url, env } = await freshServer();
      const vars: Record<string, string> = {};
      for (const example of examples) {
        const where = `${page}:${example.line}`;
        const result = await run(example, url, { ...env, ...vars });
        expect(result.code, `${where} exited ${result.code}\n${result.stderr}`).toBe(0);
        Object.assign(vars, result.exported);
        // Captured first, so an answer can be checked against itself (its Location names its id).
        for (const [name, jsonPath] of Object.entries(example.captures)) {
          vars[name] = capture(result.stdout, jsonPath);
        }
        const problems = outputDifferences(example.expected, result.stdout, vars);
        expect(problems, `${where}\n${example.command}\n--- printed ---\n${result.stdout}`).toEqual(
          [],
        );
      }
    },
    PAGE_TIMEOUT_MS,
  );
});
