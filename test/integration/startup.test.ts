import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_TIMEOUT_MS, START_TIMEOUT_MS, within } from '../helpers/server-process.js';
import { eventually } from '../helpers/webhook-receiver.js';

/*
 * What `npm start`, `npm run worker` and `npm run cli` run: scripts/ensure-built.mjs builds dist/
 * when it is missing or older than src/, then Node runs the built JavaScript. This runs the real
 * build and the built server, so a transpilation that breaks a module fails here, not for a user.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const STAMP = path.join(ROOT, 'dist', '.build-stamp');

async function ensureBuilt(): Promise<string> {
  const { stderr } = await run(process.execPath, ['scripts/ensure-built.mjs'], { cwd: ROOT });
  return stderr;
}

describe('start-up from the built output', () => {
  const dataDir = mkdtemp(path.join(os.tmpdir(), 'fido-start-'));
  afterAll(async () => {
    await rm(await dataDir, { recursive: true, force: true });
  });

  it('builds dist/ when it is missing and not again while it is current', async () => {
    await rm(STAMP, { force: true });
    expect(await ensureBuilt()).toMatch(/building dist\/ \(first run\)[\s\S]*built dist\//);
    await stat(path.join(ROOT, 'dist', 'server.js'));
    expect(await ensureBuilt()).toBe('');
  }, 120_000);

  it(
    'serves from dist/ on the embedded defaults, saying what it does while it starts',
    async () => {
      await ensureBuilt();
      const server = spawn(process.execPath, ['dist/server.js'], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          PORT: '0',
          HOST: '127.0.0.1',
          DATA_DIR: await dataDir,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      try {
        const port = await eventually(
          () => /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1],
          { timeoutMs: START_TIMEOUT_MS, what: 'the server to listen' },
        );
        expect(output.indexOf('starting: opening the database')).toBeGreaterThanOrEqual(0);
        expect(output.indexOf('starting: opening the database')).toBeLessThan(
          output.indexOf('Server listening'),
        );
        const response = await fetch(`http://127.0.0.1:${port}/`);
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ message: 'Welcome to Fido Transactions API' });
      } finally {
        server.kill('SIGTERM');
        if (server.exitCode === null) {
          await within(
            once(server, 'exit'),
            EXIT_TIMEOUT_MS,
            () => `the server to exit\n${output}`,
          );
        }
      }
      expect(server.exitCode).toBe(0);
    },
    START_TIMEOUT_MS + EXIT_TIMEOUT_MS,
  );

  it('runs the CLI from dist/', async () => {
    await ensureBuilt();
    const { stdout } = await run(process.execPath, ['dist/cli.js', 'generate-key'], { cwd: ROOT });
    expect(Buffer.from(stdout.trim(), 'base64')).toHaveLength(32);
  }, 60_000);
});
