import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { connect, nanos, type NatsConnection } from 'nats';
import { expect } from 'vitest';
import { readFeed } from '../../src/modules/events/events.repository.js';
import type { FeedPosition, PublishedEvent } from '../../src/modules/events/feed.js';
import { queryRows, type Db } from '../../src/db/client.js';
import { freePort } from './redis-server.js';
import { eventually } from './webhook-receiver.js';

/** The machine's shared NATS server (JetStream on): tests use streams of their own on it. */
export const SHARED_NATS_URL = process.env.TEST_NATS_URL || 'nats://127.0.0.1:4222';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

/** A stream name and subject prefix of this test run's own, and their relay settings. */
export function uniqueStream(): { stream: string; prefix: string; env: Record<string, string> } {
  const id = randomBytes(5).toString('hex');
  const stream = `FIDO_TEST_${id}`;
  const prefix = `fido-test-${id}.events`;
  return { stream, prefix, env: { NATS_STREAM: stream, NATS_SUBJECT_PREFIX: prefix } };
}

/** A message as the stream holds it. */
export interface StoredEvent {
  seq: number;
  subject: string;
  msgId: string | undefined;
  body: { id: string; user_id: string; type: string; [field: string]: unknown };
}

/**
 * The tests' own requests to the server (stream info, messages, creation): sized for a loaded
 * machine, where the client's default 5 s made the tests fail on a slow answer, not a wrong one.
 */
const ADMIN_TIMEOUT_MS = 30_000;

/** Runs `work` on a fresh connection to `url`, closed afterwards. */
export async function withNats<T>(url: string, work: (nc: NatsConnection) => Promise<T>) {
  const nc = await connect({ servers: url, timeout: 10_000 });
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

/** Every message of `stream`, in stream order; empty when the stream does not exist yet. */
export async function readStream(url: string, stream: string): Promise<StoredEvent[]> {
  return withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager({ timeout: ADMIN_TIMEOUT_MS });
    const info = await jsm.streams.info(stream).catch(() => undefined);
    if (!info) return [];
    const messages: StoredEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq += 1) {
      const message = await jsm.streams.getMessage(stream, { seq });
      messages.push({
        seq: message.seq,
        subject: message.subject,
        msgId: message.header?.get('Nats-Msg-Id') || undefined,
        body: message.json<StoredEvent['body']>(),
      });
    }
    return messages;
  });
}

/**
 * Creates the stream the relay would, but deduplicating over `windowMs` only: a test then shows
 * that no duplicate gets in even where JetStream's deduplication would not catch it.
 */
export async function createStream(
  url: string,
  stream: string,
  prefix: string,
  windowMs: number,
): Promise<void> {
  await withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager({ timeout: ADMIN_TIMEOUT_MS });
    await jsm.streams.add({
      name: stream,
      subjects: [`${prefix}.>`],
      duplicate_window: nanos(windowMs),
    });
  });
}

/** Deletes a test's stream (a no-op if it was never created). */
export async function deleteStream(url: string, stream: string): Promise<void> {
  await withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager({ timeout: ADMIN_TIMEOUT_MS });
    await jsm.streams.delete(stream).catch(() => false);
  });
}

/**
 * A private `nats-server -js` on 127.0.0.1, with its JetStream store in a temp directory, that a
 * test may stop (SIGTERM or SIGKILL) and start again on the same port with the same store.
 */
export class NatsServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';
  private readonly dir = mkdtempSync(join(tmpdir(), 'fido-nats-'));

  private constructor(readonly port: number) {}

  /** Picks a free port; nothing listens on it until start(). */
  static async create(): Promise<NatsServer> {
    return new NatsServer(await freePort());
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts the server and waits until JetStream answers. */
  async start(): Promise<void> {
    if (this.child) return;
    this.output = '';
    const child = spawn(
      'nats-server',
      ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.dir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-4_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise<void>((resolve) => {
      child.once('error', () => resolve());
      child.once('exit', () => resolve());
    });
    void this.exited.then(() => {
      if (this.child === child) this.child = undefined;
      killOnExit.delete(child);
    });
    this.child = child;
    killOnExit.add(child);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && this.child) {
      try {
        await withNats(this.url, async (nc) => {
          await (await nc.jetstreamManager({ timeout: ADMIN_TIMEOUT_MS })).getAccountInfo();
        });
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await this.stop('SIGKILL');
    throw new Error(`nats-server on port ${this.port} did not start:\n${this.output}`);
  }

  /** Stops the server (SIGTERM: a clean shutdown; SIGKILL: a crash) and waits for it to exit. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || !this.exited) return;
    child.kill(signal);
    const exited = this.exited;
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      exited.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** Kills the server and removes its store. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Children still running when the test worker exits are killed, whatever the test did. */
const killOnExit = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of killOnExit) child.kill('SIGKILL');
});

/** Every event of the feed, in feed order (the commit-safe order the relay publishes in). */
export async function feedEvents(db: Db): Promise<PublishedEvent[]> {
  const events: PublishedEvent[] = [];
  let after: FeedPosition | undefined;
  for (;;) {
    const page = await readFeed(db, { after, limit: 1_000 });
    events.push(...page.map((entry) => entry.event));
    const last = page.at(-1);
    if (!last) return events;
    after = last.position;
  }
}

/**
 * Waits until the stream holds as many messages as `events` has rows, then returns both: the
 * stream's messages and the feed (whose last events may wait for other tests' transactions on a
 * shared server).
 */
export async function streamCaughtUp(
  url: string,
  stream: string,
  db: Db,
  timeoutMs = 120_000,
): Promise<{ stored: StoredEvent[]; feed: PublishedEvent[] }> {
  return eventually(
    async () => {
      const [row] = await queryRows<{ n: number | string }>(
        db,
        sql`select count(*) as n from events`,
      );
      if ((await streamLength(url, stream)) < Number(row?.n ?? 0)) return undefined;
      const stored = await readStream(url, stream);
      const feed = await feedEvents(db);
      return feed.length >= stored.length ? { stored, feed } : undefined;
    },
    { timeoutMs, intervalMs: 100, what: 'the stream to hold every event of the feed' },
  );
}

/** Messages in `stream` (0 when it does not exist yet). */
export async function streamLength(url: string, stream: string): Promise<number> {
  return withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager({ timeout: ADMIN_TIMEOUT_MS });
    const info = await jsm.streams.info(stream).catch(() => undefined);
    return info?.state.messages ?? 0;
  });
}

/**
 * The relay's promise: the stream is the feed, each event once, in feed order (so in each user's
 * order), `Nats-Msg-Id` = the event id, the body the event as the feed shows it, the subject
 * `<prefix>.<type>`, and no name in it.
 */
export function expectStreamIsFeed(
  stored: StoredEvent[],
  feed: PublishedEvent[],
  prefix: string,
): void {
  expect(stored.map((m) => m.msgId)).toEqual(feed.map((e) => e.id));
  expect(stored.map((m) => m.body)).toEqual(JSON.parse(JSON.stringify(feed)));
  for (const message of stored) {
    expect(message.subject).toBe(`${prefix}.${message.body.type}`);
    expect(JSON.stringify(message.body)).not.toContain('full_name');
  }
  expect(new Set(stored.map((m) => m.msgId)).size).toBe(stored.length);
}
