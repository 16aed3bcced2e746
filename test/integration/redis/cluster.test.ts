import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  type TestDatabase,
} from '../../helpers/app.js';
import { spawnEntry } from '../../helpers/entry.js';
import { transactionBody, uniqueUserId } from '../../helpers/factories.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * WEB_CONCURRENCY=2 as an operator runs it: a supervising process and two HTTP processes on one
 * port, sharing PostgreSQL and Redis. Needs both (CI runs this folder with both set).
 */

/** A metric's samples summed over label sets whose labels include `labels`, in a scrape. */
function sample(text: string, name: string, labels = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name && (match[2] ?? '').includes(labels)) total += Number(match[3]);
  }
  return total;
}

/** The supervisor's log lines (JSON) with message `msg` (a prefix). */
function logLines(output: string, msg: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => String(line.msg).startsWith(msg));
}

describe('WEB_CONCURRENCY', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    if (!TEST_DATABASE_URL || !TEST_REDIS_URL) {
      throw new Error('test/integration/redis needs TEST_DATABASE_URL and TEST_REDIS_URL');
    }
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  const environment = (port = '0') => ({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PORT: port,
    HOST: '127.0.0.1',
    WEB_CONCURRENCY: '2',
    DATABASE_URL: database.url!,
    REDIS_URL: TEST_REDIS_URL!,
    CACHE_PREFIX: `fido-cluster-${randomBytes(4).toString('hex')}`,
    SECRET_KEY: randomBytes(32).toString('base64'),
    SCHEDULER: 'off',
    WORKER: 'off',
  });

  it('serves from two processes on one port, coherently, from the cache, with /metrics summed over both, and stops them all on SIGTERM', async () => {
    const primary = spawnEntry('server', environment(), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    primary.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    primary.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    try {
      const ports = await eventually(
        () => {
          const found = [...output.matchAll(/Server listening at http:\/\/127\.0\.0\.1:(\d+)/g)];
          return found.length >= 2 ? found.map((m) => Number(m[1])) : undefined;
        },
        { timeoutMs: 60_000, what: `two HTTP processes listening\n${output}` },
      );
      expect(new Set(ports).size).toBe(1);
      // Its HTTP processes run server.ts too (tsx's compiler service is a child as well).
      const children = execFileSync('pgrep', ['-P', String(primary.pid), '-f', 'server.ts'], {
        encoding: 'utf8',
      })
        .trim()
        .split('\n');
      expect(children).toHaveLength(2);

      // A write, then reads spread over both processes: none may serve a cache from before it.
      const url = `http://127.0.0.1:${ports[0]}`;
      const scrape = async () => {
        const response = await fetch(`${url}/metrics`, { headers: { connection: 'close' } });
        expect(response.status).toBe(200);
        return response.text();
      };
      const userId = uniqueUserId('cluster');
      for (let i = 1; i <= 3; i += 1) {
        const created = await fetch(`${url}/api/v1/transaction/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: JSON.stringify(transactionBody({ user_id: userId })),
        });
        expect(created.status).toBe(201);
        for (let read = 0; read < 6; read += 1) {
          const history = await fetch(`${url}/api/v1/transaction/history/${userId}`, {
            headers: { connection: 'close' },
          });
          expect(((await history.json()) as { data: unknown[] }).data).toHaveLength(i);
        }
      }

      // New connections go to the processes in turn: every scrape, whichever process answers it,
      // shows both processes' requests and the cache's hits (the first read after each write is
      // computed, the next five come from Redis, whichever process reads).
      const history = 'route="/api/v1/transaction/history/:user_id"';
      for (let scrapeNo = 0; scrapeNo < 4; scrapeNo += 1) {
        const text = await scrape();
        expect(sample(text, 'fido_http_request_duration_seconds_count', history)).toBe(18);
        expect(sample(text, 'fido_cache_hits_total')).toBe(15);
        expect(sample(text, 'fido_cache_misses_total')).toBe(3);
        expect(sample(text, 'fido_cache_errors_total')).toBe(0);
      }

      primary.kill('SIGTERM');
      const [code] = (await once(primary, 'exit')) as [number | null];
      expect(code, output).toBe(0);
      for (const pid of children) {
        expect(() => process.kill(Number(pid), 0)).toThrow();
      }
    } finally {
      if (primary.exitCode === null) primary.kill('SIGKILL');
    }
  }, 120_000);
  it('retries a process that fails right after starting, with backoff, then gives up, logging the reason once', async () => {
    // The port is taken: every HTTP process fails to listen, right after starting.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    const primary = spawnEntry(
      'server',
      { ...environment(String(port)), WEB_START_RETRIES: '2' },
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    primary.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    primary.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    try {
      const [code] = (await once(primary, 'exit')) as [number | null];
      expect(code, output).toBe(1);
      const first = logLines(output, 'HTTP process failed right after starting; retrying');
      const again = logLines(output, 'HTTP process failed right after starting again');
      const gaveUp = logLines(output, 'HTTP process keeps failing right after starting');
      // The reason once, however many attempts; then one line per retry, with a growing delay.
      expect(first).toHaveLength(1);
      expect(String(first[0]!.reason)).toContain('EADDRINUSE');
      expect(output.match(/EADDRINUSE/g)).toHaveLength(1);
      expect(gaveUp).toHaveLength(1);
      const retries = [...first, ...again].filter((line) => line.retry !== undefined);
      // Two processes, two retries each (WEB_START_RETRIES=2), the second after a longer delay.
      expect(retries.map((line) => Number(line.retry)).sort()).toEqual([1, 1, 2, 2]);
      const delays = retries.map((line) => Number(line.delay_ms));
      expect(Math.max(...delays)).toBe(2 * Math.min(...delays));
    } finally {
      if (primary.exitCode === null) primary.kill('SIGKILL');
      blocker.close();
    }
  }, 400_000);

  it('recovers when the cause goes away between retries', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    const primary = spawnEntry('server', environment(String(port)), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    primary.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    primary.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    try {
      await eventually(
        () => logLines(output, 'HTTP process failed right after starting').length > 0 || undefined,
        { timeoutMs: 150_000, intervalMs: 200, what: `a failed start\n${output}` },
      );
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
      const response = await eventually(
        async () => {
          try {
            const health = await fetch(`http://127.0.0.1:${port}/healthz`, {
              headers: { connection: 'close' },
            });
            return health.status === 200 ? health : undefined;
          } catch {
            return undefined;
          }
        },
        {
          timeoutMs: 200_000,
          intervalMs: 200,
          what: `the server answering after the port was freed\n${output}`,
        },
      );
      expect(response.status).toBe(200);
      expect(logLines(output, 'HTTP process keeps failing')).toHaveLength(0);
      primary.kill('SIGTERM');
      const [code] = (await once(primary, 'exit')) as [number | null];
      expect(code, output).toBe(0);
    } finally {
      if (primary.exitCode === null) primary.kill('SIGKILL');
      blocker.close();
    }
  }, 400_000);
});
