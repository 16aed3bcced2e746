import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyRing } from '../../../src/platform/crypto.js';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { spawnEntry } from '../../helpers/entry.js';
import { transactionBody, uniqueUserId } from '../../helpers/factories.js';
import {
  createStream,
  deleteStream,
  expectStreamIsFeed,
  SHARED_NATS_URL,
  streamCaughtUp,
  streamLength,
  uniqueStream,
} from '../../helpers/nats-server.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * The relay in `npm run worker` processes on PostgreSQL: two at once (the advisory lock takes
 * turns, the stream's fence keeps order), each SIGKILLed in the middle of the stream while writes
 * go on, and replaced. Deduplication lasts 100 ms only, so the fence alone keeps duplicates out.
 */
describe('JetStream relay in worker processes', () => {
  let database: TestDatabase;
  const secretKey = randomBytes(32).toString('base64');
  const { stream, prefix, env } = uniqueStream();
  const workers = new Set<ChildProcess>();

  beforeAll(async () => {
    database = await createTestDatabase();
    await createStream(SHARED_NATS_URL, stream, prefix, 100);
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await deleteStream(SHARED_NATS_URL, stream).catch(() => undefined);
    await database.drop();
  });

  function startWorker(): ChildProcess {
    const worker = spawnEntry('worker', {
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      SCHEDULER: 'off',
      WORKER_PORT: '0',
      WORKER_POLL_MS: '50',
      DATABASE_URL: database.url!,
      SECRET_KEY: secretKey,
      NATS_URL: SHARED_NATS_URL,
      ...env,
    });
    workers.add(worker);
    return worker;
  }

  async function kill(worker: ChildProcess): Promise<void> {
    if (worker.exitCode === null && worker.signalCode === null) {
      worker.kill('SIGKILL');
      await once(worker, 'exit');
    }
    workers.delete(worker);
  }

  it('two worker processes, each killed mid-stream and replaced: every event once, in feed order', async () => {
    const app = await buildTestApp(database, {
      env: { WORKER: 'off' },
      deps: { keyRing: parseKeyRing({ secretKey })! },
    });
    try {
      let first = startWorker();
      let second = startWorker();
      const users = Array.from({ length: 4 }, () => uniqueUserId());
      const writing = Promise.all(
        users.map(async (userId) => {
          for (let amount = 1; amount <= 40; amount += 1) {
            const response = await app.inject({
              method: 'POST',
              url: '/api/v1/transaction/',
              payload: transactionBody({ user_id: userId, transaction_amount: amount }),
            });
            expect(response.statusCode).toBe(201);
          }
        }),
      );
      for (const [threshold, which] of [
        [30, 'first'],
        [80, 'second'],
      ] as const) {
        await eventually(
          async () =>
            (await streamLength(SHARED_NATS_URL, stream)) >= threshold ? true : undefined,
          { timeoutMs: 120_000, what: `${threshold} events in the stream` },
        );
        if (which === 'first') {
          await kill(first);
          first = startWorker();
        } else {
          await kill(second);
          second = startWorker();
        }
      }
      await writing;

      const { stored, feed } = await streamCaughtUp(SHARED_NATS_URL, stream, database.handle.db);
      expect(feed).toHaveLength(160);
      expectStreamIsFeed(stored, feed, prefix);
      for (const userId of users) {
        const amounts = stored
          .filter((m) => m.body.user_id === userId)
          .map((m) => (m.body.data as { transaction: { transaction_amount: number } }).transaction)
          .map((t) => t.transaction_amount);
        expect(amounts).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      }
    } finally {
      for (const worker of [...workers]) await kill(worker);
      await app.close();
    }
  }, 300_000);
});
