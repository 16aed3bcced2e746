import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
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

  it('serves from two processes on one port, coherently, and stops them all on SIGTERM', async () => {
    const primary = spawnEntry(
      'server',
      {
        NODE_ENV: 'test',
        LOG_LEVEL: 'info',
        PORT: '0',
        HOST: '127.0.0.1',
        WEB_CONCURRENCY: '2',
        DATABASE_URL: database.url!,
        REDIS_URL: TEST_REDIS_URL!,
        CACHE_PREFIX: `fido-cluster-${randomBytes(4).toString('hex')}`,
        SECRET_KEY: randomBytes(32).toString('base64'),
        SCHEDULER: 'off',
        WORKER: 'off',
      },
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
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
});
