import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/app.js';
import { bearer } from '../helpers/auth.js';
import { finished, REPO_ROOT, spawnEntry, type Finished } from '../helpers/entry.js';
import { freePort } from '../helpers/redis-server.js';
import { EXIT_TIMEOUT_MS, ServerProcess, within } from '../helpers/server-process.js';
import { eventually } from '../helpers/webhook-receiver.js';

/*
 * A newcomer's first ten minutes, as they would run them: the command the server prints for the
 * first key works while that server runs; a bad setting is one line, not a stack trace; the
 * benchmark explains itself; docker compose runs migrations and says what to do before the API
 * could restart in a loop. Each on the suite's backend (TEST_DATABASE_URL: PostgreSQL).
 */

const TEST_TIMEOUT_MS = 420_000;
const SECRET_KEY = randomBytes(32).toString('base64');

let workDir: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  // An empty working directory: a developer's .env cannot leak into the processes.
  workDir = await mkdtemp(path.join(os.tmpdir(), 'fido-first-run-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** A fresh DATA_DIR, and DATABASE_URL of a fresh database when the suite runs on PostgreSQL. */
async function freshStorage(): Promise<Record<string, string>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'fido-first-run-data-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  let database: TestDatabase | undefined;
  if (process.env.TEST_DATABASE_URL) {
    database = await createTestDatabase();
    cleanups.push(() => database!.drop());
  }
  return { DATA_DIR: dataDir, ...(database?.url ? { DATABASE_URL: database.url } : {}) };
}

function startServer(env: Record<string, string>): ServerProcess {
  const server = new ServerProcess({ HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }, workDir);
  cleanups.push(async () => {
    if (server.running) server.child.kill('SIGKILL');
    await within(server.exited, EXIT_TIMEOUT_MS, () => 'a killed server to exit');
  });
  return server;
}

function cli(env: Record<string, string>, args: readonly string[]): Promise<Finished> {
  return finished(
    spawnEntry('cli', env, { cwd: workDir, args, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
}

/** A shell command line as a reader pastes it, run from the repository (npm scripts need it). */
function shell(command: string, env: Record<string, string>): Promise<Finished> {
  return finished(
    spawn('bash', ['-c', command], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** One line, no stack frames: what an operator should see when a setting is wrong. */
function expectOneLine(output: Finished, mentions: RegExp): void {
  const text = output.stderr.trim();
  expect(text.split('\n'), output.stderr).toHaveLength(1);
  expect(text).toMatch(mentions);
  expect(text).not.toMatch(/\n\s+at |\bat .*\.ts:\d+/);
}

describe('a bad setting stops each entry with one line, no stack trace', () => {
  it(
    'the server, the worker and the CLI',
    async () => {
      const env = { PORT: 'abc', RATE_LIMIT_MAX: '-1', DATA_DIR: workDir };
      const server = await finished(
        spawnEntry('server', env, { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] }),
      );
      const worker = await finished(
        spawnEntry(
          'worker',
          { ...env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
          { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] },
        ),
      );
      const command = await cli(env, ['keys', 'list']);
      for (const output of [server, worker, command]) {
        expect(output.code, output.stderr).toBe(1);
        // Both problems, on the one line.
        expectOneLine(output, /invalid configuration: .*\bPORT\b.*; .*\bRATE_LIMIT_MAX\b/);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a production server with no way to authenticate says how to make the first key',
    async () => {
      const server = startServer({
        ...(await freshStorage()),
        NODE_ENV: 'production',
        SECRET_KEY,
        PORT: '0',
      });
      const exit = await server.exitWithin(60_000);
      expect(exit.code, server.output()).toBe(1);
      expectOneLine(
        { code: exit.code, stdout: server.stdout, stderr: server.stderr },
        /keys create --scopes admin/,
      );
    },
    TEST_TIMEOUT_MS,
  );
});

describe('the first key', () => {
  it(
    'is made by the command the open server prints, while that server runs',
    async () => {
      const storage = await freshStorage();
      const port = String(await freePort());
      const env = { ...storage, PORT: port, NODE_ENV: 'development' };
      const server = startServer(env);
      const hint = String((await server.logLine(/AUTHENTICATION IS OFF/)).msg);
      const command = /to turn it on: (.+)$/.exec(hint)?.[1];
      expect(command).toMatch(/^npm run .*keys create/);
      const url = `http://127.0.0.1:${port}`;
      await server.logLine(/^Server listening at/);

      const made = await shell(command!, env);
      expect(made.code, made.stderr).toBe(0);
      const key = /^fido_\S+$/m.exec(made.stdout)?.[0];
      expect(key, made.stdout).toBeDefined();

      // The server now requires credentials (at once, or within its 5 s re-check when the CLI
      // wrote to PostgreSQL itself), and the new key passes.
      await eventually(
        async () => ((await fetch(`${url}/api/v1/api-keys`)).status === 401 ? true : undefined),
        { timeoutMs: 30_000, what: 'the server to require credentials' },
      );
      const listed = await fetch(`${url}/api/v1/api-keys`, { headers: bearer(key!) });
      expect(listed.status).toBe(200);

      // The same command again: PostgreSQL serves both processes; the embedded database's
      // closed server cannot make it, and the CLI says what to do instead, in one line.
      const again = await shell(command!, env);
      if (storage.DATABASE_URL) {
        expect(again.code, again.stderr).toBe(0);
      } else {
        expect(again.code).toBe(1);
        expectOneLine(again, /requires credentials: create more keys through its API/);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'is made in the order docker-compose.yml gives: setup refuses, the key is made, setup passes',
    async () => {
      const compose = await readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
      // The CLI arguments of "docker compose run --rm setup keys create …" in the header.
      const keysCreate = /^#\s+docker compose run --rm setup (keys create [^#\n]*?)\s*(?:#|$)/m
        .exec(compose)?.[1]
        ?.split(/\s+/);
      expect(keysCreate).toBeDefined();
      const env = { ...(await freshStorage()), NODE_ENV: 'production', SECRET_KEY };

      const refused = await cli(env, ['preflight']);
      expect(refused.code).toBe(1);
      expectOneLine(refused, /docker compose run --rm setup keys create --scopes admin/);

      const made = await cli(env, keysCreate!);
      expect(made.code, made.stderr).toBe(0);
      expect(made.stdout).toMatch(/^fido_\S+\n$/);

      const passed = await cli(env, ['preflight']);
      expect(passed.code, passed.stderr).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('docker-compose.yml', () => {
  interface Service {
    entrypoint?: string[];
    command?: string[];
    environment?: Record<string, string>;
    depends_on?: Record<string, { condition: string }>;
  }

  it('runs migrations and the preflight first, and the scheduler in the worker only', async () => {
    const compose = parse(await readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), {
      merge: true,
    }) as { services: Record<string, Service> };
    const { setup, api, worker } = compose.services;
    expect(setup?.entrypoint).toEqual(['node', 'dist/cli.js']);
    expect(setup?.command).toEqual(['preflight']);
    for (const service of [api, worker]) {
      expect(service?.depends_on?.setup).toEqual({ condition: 'service_completed_successfully' });
      expect(service?.environment?.NODE_ENV).toBe('production');
    }
    // The API serves requests only; the worker delivers events and runs the scheduled jobs.
    expect(api?.environment).toMatchObject({ WORKER: 'off', SCHEDULER: 'off' });
    expect(worker?.command).toEqual(['node', 'dist/worker.js']);
    expect(worker?.environment?.SCHEDULER).toBeUndefined();
    expect(setup?.environment).toEqual(worker?.environment);
  });
});

describe('npm run bench -- --help', () => {
  it(
    'prints the usage',
    async () => {
      const help = await shell('npm run --silent bench -- --help', {});
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^Usage: npm run bench/);
      expect(help.stdout).toContain('--scenario');
    },
    TEST_TIMEOUT_MS,
  );
});
