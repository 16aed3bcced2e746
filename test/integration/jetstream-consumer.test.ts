import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueUserId } from '../helpers/factories.js';
import { postTransaction, useTestApp } from '../helpers/app.js';
import {
  deleteStream,
  feedEvents,
  SHARED_NATS_URL,
  streamCaughtUp,
  uniqueStream,
} from '../helpers/nats-server.js';
import { eventually } from '../helpers/webhook-receiver.js';

type Consume = (options: {
  servers: string;
  stream: string;
  durable: string;
  handle: (event: { id: string; user_id: string }) => Promise<void>;
  seen: (id: string) => Promise<boolean>;
  remember: (id: string) => Promise<void>;
  signal: AbortSignal;
}) => Promise<void>;

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * docs/jetstream.md's consumer, exactly as a reader would copy it, written under node_modules so
 * that its `import 'nats'` resolves to the project's client.
 */
async function loadDocsConsumer(directory: string): Promise<Consume> {
  const page = await readFile(path.join(REPO_ROOT, 'docs', 'jetstream.md'), 'utf8');
  const section = /<!-- jetstream-consumer:start -->([\s\S]*?)<!-- jetstream-consumer:end -->/.exec(
    page,
  )?.[1];
  const code = section && /```js\n([\s\S]*?)```/.exec(section)?.[1];
  if (!code) throw new Error('docs/jetstream.md has no consumer snippet between its markers');
  const file = path.join(directory, 'consumer.mjs');
  await writeFile(file, code);
  return ((await import(pathToFileURL(file).href)) as { consumeFidoEvents: Consume })
    .consumeFidoEvents;
}

describe('the consumer in docs/jetstream.md', () => {
  const { stream, env } = uniqueStream();
  const ctx = useTestApp({
    env: { WORKER: 'inline', WORKER_POLL_MS: '50', NATS_URL: SHARED_NATS_URL, ...env },
  });
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(REPO_ROOT, 'node_modules', '.fido-docs-'));
  });
  afterAll(async () => {
    await deleteStream(SHARED_NATS_URL, stream).catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
  });

  it('handles every event once, in feed order, and skips the ids it has already handled', async () => {
    const consume = await loadDocsConsumer(directory);
    const users = [uniqueUserId(), uniqueUserId()];
    for (let i = 0; i < 8; i += 1) await postTransaction(ctx.app, { user_id: users[i % 2] });
    const db = ctx.database.handle.db;
    const { feed } = await streamCaughtUp(SHARED_NATS_URL, stream, db, 120_000);
    expect(feed).toHaveLength(8);

    // A consumer that already handled the first three (say, before a crash that lost its acks).
    const handledIds = new Set(feed.slice(0, 3).map((e) => e.id));
    const handled: string[] = [];
    const controller = new AbortController();
    const running = consume({
      servers: SHARED_NATS_URL,
      stream,
      durable: 'docs-example',
      handle: async (event) => {
        handled.push(event.id);
      },
      seen: async (id) => handledIds.has(id),
      remember: async (id) => {
        handledIds.add(id);
      },
      signal: controller.signal,
    });
    await eventually(() => (handled.length >= 5 ? true : undefined), {
      timeoutMs: 60_000,
      what: 'the consumer to handle the new events',
    });
    expect(handled).toEqual(feed.slice(3).map((e) => e.id));

    // Later events reach the running consumer too, in order.
    await postTransaction(ctx.app, { user_id: users[0] });
    await eventually(() => (handled.length >= 6 ? true : undefined), {
      timeoutMs: 60_000,
      what: 'a later event',
    });
    controller.abort();
    await running;
    expect(handled).toEqual((await feedEvents(db)).slice(3).map((e) => e.id));
  }, 240_000);
});
