import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import {
  JETSTREAM_STATE_NAME,
  readJetStreamPosition,
  saveJetStreamPosition,
} from '../../src/modules/events/jetstream.repository.js';
import { pruneEvents, relayEvents } from '../../src/modules/events/outbox.js';
import { queryRows } from '../../src/db/client.js';
import { uniqueUserId } from '../helpers/factories.js';
import {
  buildTestApp,
  createTestDatabase,
  postTransaction,
  type TestDatabase,
} from '../helpers/app.js';
import {
  createStream,
  deleteStream,
  expectStreamIsFeed,
  feedEvents,
  NatsServer,
  readStream,
  SHARED_NATS_URL,
  streamCaughtUp,
  streamLength,
  uniqueStream,
} from '../helpers/nats-server.js';
import { eventually } from '../helpers/webhook-receiver.js';

/*
 * The relay from the feed to NATS JetStream, on a real nats-server: the machine's shared one (a
 * stream and subject prefix of this run's own, deleted after), or a private one on a free port
 * that the test stops and starts. Small batches, so every run crosses many batch boundaries.
 */

const RELAY_ENV = { WORKER: 'inline', WORKER_POLL_MS: '50' };
const BATCH = 7;

/** Creates, updates and deletes for a few users: `count` writes, every kind of event. */
async function writeSome(app: FastifyInstance, count: number, users: string[]): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    const created = await postTransaction(app, {
      user_id: users[i % users.length],
      transaction_amount: i + 1,
    });
    if (i % 3 === 1) {
      const response = await app.inject({
        method: 'PATCH',
        url: `/api/v1/transaction/${created.id}`,
        payload: { description: `edit ${i}` },
      });
      expect(response.statusCode).toBe(200);
    }
    if (i % 5 === 4) {
      const response = await app.inject({
        method: 'DELETE',
        url: `/api/v1/transaction/${created.id}`,
      });
      expect(response.statusCode).toBe(200);
    }
  }
}

async function readyz(app: FastifyInstance) {
  const response = await app.inject('/readyz');
  expect(response.statusCode).toBe(200);
  return response.json<{ checks: Record<string, string>; jetstream_lag?: number }>();
}

async function lagMetric(app: FastifyInstance): Promise<number> {
  const text = (await app.inject('/metrics')).body;
  const match = /^fido_jetstream_lag_events (\S+)$/m.exec(text);
  if (!match) throw new Error('no fido_jetstream_lag_events in /metrics');
  return Number(match[1]);
}

// Sized for a loaded machine: a test takes 10-20 s alone.
const TEST_TIMEOUT_MS = 240_000;

describe('JetStream relay', () => {
  let database: TestDatabase;
  const apps: FastifyInstance[] = [];
  const streams: { url: string; stream: string }[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    for (const { url, stream } of streams) await deleteStream(url, stream).catch(() => undefined);
    await database.drop();
  });

  /** A fresh database per test: the stream must equal the feed, the whole feed. */
  async function freshDatabase(): Promise<TestDatabase> {
    await database.drop();
    database = await createTestDatabase();
    return database;
  }

  async function relayApp(
    url: string,
    env: Record<string, string>,
    deps: Parameters<typeof buildTestApp>[1] = {},
  ): Promise<FastifyInstance> {
    const app = await buildTestApp(database, {
      env: { ...RELAY_ENV, NATS_URL: url, ...env, ...deps.env },
      deps: { jetStreamRelay: { batchSize: BATCH }, ...deps.deps },
    });
    apps.push(app);
    return app;
  }

  async function close(app: FastifyInstance): Promise<void> {
    apps.splice(apps.indexOf(app), 1);
    await app.close();
  }

  it(
    'publishes every event once, in feed order, with Nats-Msg-Id = the event id; lag reaches 0',
    async () => {
      const { stream, prefix, env } = uniqueStream();
      streams.push({ url: SHARED_NATS_URL, stream });
      const app = await relayApp(SHARED_NATS_URL, env);
      const users = [uniqueUserId(), uniqueUserId(), uniqueUserId()];
      await writeSome(app, 30, users);

      const { stored, feed } = await streamCaughtUp(SHARED_NATS_URL, stream, database.handle.db);
      expect(feed.length).toBe(30 + 10 + 6);
      expectStreamIsFeed(stored, feed, prefix);
      expect(new Set(stored.map((m) => m.body.type))).toEqual(
        new Set(['transaction.created', 'transaction.updated', 'transaction.deleted']),
      );
      // Each user's events, in the stream, in the order that user's changes were made.
      for (const user of users) {
        const amounts = stored
          .filter((m) => m.body.user_id === user && m.body.type === 'transaction.created')
          .map((m) => (m.body.data as { transaction: { transaction_amount: number } }).transaction)
          .map((t) => t.transaction_amount);
        expect(amounts).toEqual([...amounts].sort((a, b) => a - b));
        expect(amounts.length).toBe(10);
      }

      await eventually(async () => ((await readyz(app)).jetstream_lag === 0 ? true : undefined), {
        timeoutMs: 120_000,
        what: 'a lag of 0 in /readyz',
      });
      expect((await readyz(app)).checks.jetstream).toBe('ok');
      expect(await lagMetric(app)).toBe(0);
      expect((await app.inject('/metrics')).body).toMatch(/^fido_jetstream_published_total 46$/m);
      await close(app);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'NATS down at start and restarted mid-stream (SIGTERM and SIGKILL): each event once, in order; lag reported',
    async () => {
      await freshDatabase();
      const nats = await NatsServer.create();
      try {
        const { prefix, env, stream } = uniqueStream();
        const app = await relayApp(nats.url, env);
        const users = [uniqueUserId(), uniqueUserId()];
        await writeSome(app, 10, users);
        // Nothing can be published: the lag is every event, in /readyz and /metrics.
        const ready = await readyz(app);
        expect(ready.checks.jetstream).toBe('unavailable');
        expect(ready.checks.database).toBe('ok');
        expect(ready.jetstream_lag).toBe(15);
        expect(await lagMetric(app)).toBe(15);

        await nats.start();
        await eventually(async () => ((await readyz(app)).jetstream_lag === 0 ? true : undefined), {
          timeoutMs: 120_000,
          what: 'the relay to catch up once NATS is up',
        });
        expect(await streamLength(nats.url, stream)).toBe(15);

        for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
          // Writes go on while NATS goes away mid-stream and comes back.
          const before = await streamLength(nats.url, stream);
          const writing = writeSome(app, 20, users);
          await eventually(
            async () => ((await streamLength(nats.url, stream)) >= before + 5 ? true : undefined),
            { timeoutMs: 120_000, what: 'some of the new events in the stream' },
          );
          await nats.stop(signal);
          await writing;
          await writeSome(app, 2, users);
          expect((await readyz(app)).jetstream_lag).toBeGreaterThanOrEqual(3);
          await nats.start();
        }

        const { stored, feed } = await streamCaughtUp(nats.url, stream, database.handle.db);
        expect(feed.length).toBe(15 + 2 * (31 + 3));
        expectStreamIsFeed(stored, feed, prefix);
        await eventually(async () => ((await readyz(app)).jetstream_lag === 0 ? true : undefined), {
          timeoutMs: 120_000,
          what: 'a lag of 0 after the restarts',
        });
        await close(app);
      } finally {
        await nats.destroy();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a relay that dies between publish and save: the next one resumes from the stream, no duplicate',
    async () => {
      await freshDatabase();
      const { prefix, env, stream } = uniqueStream();
      streams.push({ url: SHARED_NATS_URL, stream });
      // A deduplication window far shorter than the test: only the fence can keep a duplicate out.
      await createStream(SHARED_NATS_URL, stream, prefix, 100);
      let crashes = 0;
      const writer = await buildTestApp(database);
      apps.push(writer);
      await writeSome(writer, 20, [uniqueUserId(), uniqueUserId()]);
      const dying = await relayApp(SHARED_NATS_URL, env, {
        deps: {
          jetStreamRelay: {
            batchSize: BATCH,
            afterPublish: () => {
              crashes += 1;
              throw new Error('injected crash between publish and save');
            },
          },
        },
      });
      await eventually(() => (crashes > 0 ? true : undefined), {
        timeoutMs: 120_000,
        what: 'the injected crash',
      });
      await close(dying);
      // Published and acknowledged, but never saved: only the stream knows.
      const published = await readStream(SHARED_NATS_URL, stream);
      expect(published.length).toBeGreaterThanOrEqual(BATCH);
      expect(await readJetStreamPosition(database.handle.db)).toBeUndefined();

      const next = await relayApp(SHARED_NATS_URL, env);
      const { stored, feed } = await streamCaughtUp(SHARED_NATS_URL, stream, database.handle.db);
      expect(feed.length).toBe(20 + 7 + 4);
      expectStreamIsFeed(stored, feed, prefix);
      await eventually(async () => ((await readyz(next)).jetstream_lag === 0 ? true : undefined), {
        timeoutMs: 120_000,
        what: 'the saved position to catch up',
      });
      await close(next);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'two relays at once on one database and one stream: each event once, in order',
    async () => {
      await freshDatabase();
      const { prefix, env, stream } = uniqueStream();
      streams.push({ url: SHARED_NATS_URL, stream });
      // On PGlite the advisory lock cannot exclude (one session), and deduplication lasts 100 ms:
      // the stream's fence alone keeps duplicates out.
      await createStream(SHARED_NATS_URL, stream, prefix, 100);
      const first = await relayApp(SHARED_NATS_URL, env);
      const second = await relayApp(SHARED_NATS_URL, env);
      const users = [uniqueUserId(), uniqueUserId(), uniqueUserId()];
      await Promise.all([writeSome(first, 25, users), writeSome(second, 25, users)]);
      const { stored, feed } = await streamCaughtUp(SHARED_NATS_URL, stream, database.handle.db);
      expect(feed.length).toBe(2 * (25 + 8 + 5));
      expectStreamIsFeed(stored, feed, prefix);
      expect(await feedEvents(database.handle.db)).toHaveLength(stored.length);
      await Promise.all([close(first), close(second)]);
    },
    TEST_TIMEOUT_MS,
  );

  it('reads a saved position the earlier code wrote, and saves in its format', async () => {
    await freshDatabase();
    const db = database.handle.db;
    const stored = async () =>
      (
        await queryRows<{ value: string }>(
          db,
          sql`select value from job_state where name = ${JETSTREAM_STATE_NAME}`,
        )
      ).map((row) => row.value);
    // As jetstream.repository.ts stored it by hand: "<tx id>.<sequence>".
    await db.execute(
      sql`insert into job_state (name, value) values (${JETSTREAM_STATE_NAME}, '1234.5678')`,
    );
    expect(await readJetStreamPosition(db)).toEqual({ txId: '1234', sequence: '5678' });
    await saveJetStreamPosition(db, { txId: '1234', sequence: '5679' });
    expect(await stored()).toEqual(['1234.5679']);
    // Never moved back: the save statement still compares the stored text's two fields.
    await saveJetStreamPosition(db, { txId: '999', sequence: '9999' });
    expect(await stored()).toEqual(['1234.5679']);
    expect(await readJetStreamPosition(db)).toEqual({ txId: '1234', sequence: '5679' });
  });

  it(
    'pruning keeps old events the stream does not have yet',
    async () => {
      await freshDatabase();
      const db = database.handle.db;
      const app = await buildTestApp(database);
      apps.push(app);
      await writeSome(app, 3, [uniqueUserId()]);
      await eventually(
        async () =>
          (await relayEvents(db, { batchSize: 100, retryWindowMs: 3_600_000 })) === 0
            ? true
            : undefined,
        { timeoutMs: 120_000, what: 'the outbox relay to finish' },
      );
      await db.execute(sql`update events set created_at = now() - interval '100 days'`);
      const prune = () =>
        pruneEvents(db, {
          retentionDays: 90,
          batchSize: 100,
          deadline: Date.now() + 10_000,
          jetstream: true,
        });
      // Nothing is in the stream yet: nothing goes.
      expect((await prune()).events).toBe(0);
      const feed = await feedEvents(db);
      expect(feed).toHaveLength(4);
      // The first two are in the stream: those two go, the others stay.
      const [second] = await queryRows<{ tx_id: string; sequence: string }>(
        db,
        sql`select tx_id::text as tx_id, sequence::text as sequence from events where id = ${feed[1]!.id}`,
      );
      await saveJetStreamPosition(db, { txId: second!.tx_id, sequence: second!.sequence });
      expect((await prune()).events).toBe(2);
      expect((await feedEvents(db)).map((e) => e.id)).toEqual(feed.slice(2).map((e) => e.id));
      await close(app);
    },
    TEST_TIMEOUT_MS,
  );
});
