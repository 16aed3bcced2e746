import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyRing, type KeyRing } from '../../../src/platform/crypto.js';
import { queryRows } from '../../../src/db/client.js';
import { buildTestApp, createTestDatabase, type TestDatabase } from '../../helpers/app.js';
import { transactionBody, uniqueUserId } from '../../helpers/factories.js';
import { spawnEntry } from '../../helpers/entry.js';
import { eventually, WebhookReceiver } from '../../helpers/webhook-receiver.js';

/*
 * The worker under real concurrency: several writers, readers and workers on one PostgreSQL
 * database, and a worker process killed with SIGKILL in the middle of a delivery.
 */

const FAST_WORKER = {
  WORKER: 'inline',
  WORKER_POLL_MS: '50',
  WEBHOOK_BACKOFF_BASE_MS: '20',
  WEBHOOK_BACKOFF_MAX_MS: '50',
  WEBHOOK_TIMEOUT_MS: '1000',
};

interface FeedPage {
  data: { id: string; user_id: string; transaction_id: string }[];
  pagination: { next_cursor: string | null; has_more: boolean };
}

describe('event worker on PostgreSQL', () => {
  let database: TestDatabase;
  let receiver: WebhookReceiver;
  const secretKey = randomBytes(32).toString('base64');
  let keyRing: KeyRing;

  beforeAll(async () => {
    database = await createTestDatabase();
    receiver = await WebhookReceiver.start();
    keyRing = parseKeyRing({ secretKey })!;
  });
  afterAll(async () => {
    await receiver.close();
    await database.drop();
  });

  async function webhookTo(app: FastifyInstance, pathName: string): Promise<string> {
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      payload: { url: receiver.url(pathName) },
    });
    expect(response.statusCode).toBe(201);
    return response.json<{ data: { id: string } }>().data.id;
  }

  it('a reader paging during concurrent writes sees every event exactly once', async () => {
    const app = await buildTestApp(database, { deps: { keyRing } });
    try {
      const seen: string[] = [];
      let after: string | null = null;
      const readPage = async () => {
        const url: string = `/api/v1/events?limit=7${after ? `&after=${after}` : ''}`;
        const page = (await app.inject(url)).json<FeedPage>();
        seen.push(...page.data.map((e) => e.id));
        after = page.pagination.next_cursor;
        return page.pagination.has_more;
      };
      let writing = true;
      const writers = Array.from({ length: 6 }, async () => {
        for (let i = 0; i < 15; i += 1) {
          const response = await app.inject({
            method: 'POST',
            url: '/api/v1/transaction/',
            payload: transactionBody(),
          });
          expect(response.statusCode).toBe(201);
        }
      });
      const reader = (async () => {
        while (writing) await readPage();
      })();
      await Promise.all(writers);
      writing = false;
      await reader;
      const all = (
        await queryRows<{ id: string }>(database.handle.db, sql`select id from events`)
      ).map((r) => r.id);
      // The last events are served once older transactions on the server (other tests' too) end.
      await eventually(
        async () => {
          while (await readPage());
          return seen.length >= all.length ? true : undefined;
        },
        { timeoutMs: 60_000, what: 'the feed to catch up' },
      );
      expect(seen).toHaveLength(new Set(seen).size);
      expect(new Set(seen)).toEqual(new Set(all));
      expect(all.length).toBeGreaterThanOrEqual(90);
    } finally {
      await app.close();
    }
  });

  it('two workers share the deliveries and keep each user in order', async () => {
    const first = await buildTestApp(database, { env: FAST_WORKER, deps: { keyRing } });
    const second = await buildTestApp(database, { env: FAST_WORKER, deps: { keyRing } });
    try {
      await webhookTo(first, '/shared');
      const users = Array.from({ length: 4 }, () => uniqueUserId());
      await Promise.all(
        users.map(async (userId) => {
          for (let amount = 1; amount <= 6; amount += 1) {
            const app = amount % 2 === 0 ? first : second;
            const response = await app.inject({
              method: 'POST',
              url: '/api/v1/transaction/',
              payload: transactionBody({ user_id: userId, transaction_amount: amount }),
            });
            expect(response.statusCode).toBe(201);
          }
        }),
      );
      type Delivered = { user_id: string; data: { transaction: { transaction_amount: number } } };
      const amountsOf = (userId: string) =>
        receiver
          .accepted('/shared')
          .map((r) => JSON.parse(r.body) as Delivered)
          .filter((e) => e.user_id === userId)
          .map((e) => e.data.transaction.transaction_amount);
      await eventually(
        () => (users.every((u) => new Set(amountsOf(u)).size === 6) ? true : undefined),
        { timeoutMs: 60_000, what: 'six deliveries per user' },
      );
      for (const userId of users) {
        const amounts = amountsOf(userId);
        // At least once: a repeat may happen, but never out of order.
        expect([...new Set(amounts)]).toEqual([1, 2, 3, 4, 5, 6]);
        expect(amounts).toEqual([...amounts].sort((a, b) => a - b));
      }
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('a worker killed mid-delivery loses nothing: the next one delivers the same event', async () => {
    let release = false;
    receiver.respond = (pathName) => (pathName === '/killed' && !release ? 'hang' : 200);
    const app = await buildTestApp(database, { env: { WORKER: 'off' }, deps: { keyRing } });
    let worker: ChildProcess | undefined;
    try {
      await webhookTo(app, '/killed');
      const created = await app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        payload: transactionBody(),
      });
      const transactionId = created.json<{ data: { id: string } }>().data.id;

      worker = startWorkerProcess({ DATABASE_URL: database.url!, SECRET_KEY: secretKey });
      const [hung] = await eventually(
        () => (receiver.hung.some((r) => r.path === '/killed') ? receiver.hung : undefined),
        { timeoutMs: 60_000, what: 'the worker process to start delivering' },
      );
      worker.kill('SIGKILL');
      await once(worker, 'exit');
      release = true;

      worker = startWorkerProcess({ DATABASE_URL: database.url!, SECRET_KEY: secretKey });
      const [delivered] = await eventually(
        () => {
          const got = receiver.accepted('/killed');
          return got.length > 0 ? got : undefined;
        },
        { timeoutMs: 60_000, what: 'the second worker to deliver' },
      );
      expect(delivered!.headers['fido-event-id']).toBe(hung!.headers['fido-event-id']);
      expect(JSON.parse(delivered!.body)).toMatchObject({ transaction_id: transactionId });
    } finally {
      worker?.kill('SIGKILL');
      await app.close();
    }
  }, 120_000);
});

/** `npm run worker`, as an operator starts it (from source, in an otherwise empty environment). */
function startWorkerProcess(env: Record<string, string>): ChildProcess {
  return spawnEntry('worker', {
    // Production, with no API key anywhere: the worker checks no credentials, so it starts.
    NODE_ENV: 'production',
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    LOG_LEVEL: 'warn',
    SCHEDULER: 'off',
    WORKER_PORT: '0',
    ...FAST_WORKER,
    ...env,
  });
}
