import type { FastifyBaseLogger } from 'fastify';
import {
  connect,
  DiscardPolicy,
  Events,
  NatsError,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type PubAck,
} from 'nats';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Db } from '../../db/client.js';
import { isDatabaseUnavailable } from '../../platform/errors.js';
import { outageLog } from '../../platform/outage.js';
import { startLoop } from './loop.js';
import { countEventsAfter, feedPositionOf, readFeed } from './events.repository.js';
import type { FeedEntry, FeedPosition, PublishedEvent } from './feed.js';
import {
  readJetStreamPosition,
  saveJetStreamPosition,
  tryJetStreamLock,
} from './jetstream.repository.js';
import {
  JETSTREAM_BATCH_SIZE,
  JETSTREAM_IN_FLIGHT_MAX,
  JETSTREAM_PUBLISH_TIMEOUT_MS,
  JETSTREAM_CONNECT_TIMEOUT_MS,
  JETSTREAM_RECONNECT_WAIT_MS,
  JETSTREAM_DUPLICATE_WINDOW_MS,
  LAG_COUNT_CAP,
} from './events.limits.js';

/** JetStream API error codes the relay tells apart. */
const STREAM_NOT_FOUND = 10_059;
const STREAM_NAME_IN_USE = 10_058;
const NO_MESSAGE_FOUND = 10_037;
const WRONG_LAST_SEQUENCE = 10_071;

export interface JetStreamRelayOptions {
  db: Db;
  /**
   * Take the advisory lock for each step (PostgreSQL: one relay at a time across processes).
   * PGlite has one session, where the lock never contends; the stream's fence alone keeps order.
   */
  exclusive: boolean;
  /** Comma-separated NATS server URLs. */
  servers: string;
  stream: string;
  subjectPrefix: string;
  /** How often the relay looks for new events (and retries NATS) when nothing wakes it. */
  pollMs: number;
  logger: Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;
  metrics?: JetStreamMetrics;
  batchSize?: number;
  /**
   * Called once a batch is acknowledged and before its position is saved: a crash point for
   * tests (a throw here is a relay that died between the publish and the save).
   */
  afterPublish?: (published: number) => Promise<void> | void;
}

export interface JetStreamRelay {
  /** Look for new events now (called after a write commits). */
  nudge(): void;
  /** Whether the relay holds a live connection to NATS. */
  connected(): boolean;
  stop(): Promise<void>;
}

/** Where the relay stands: the last event in the stream, by feed position and stream sequence. */
interface Cursor {
  position: FeedPosition | undefined;
  lastSeq: number;
}

/** Another relay published first, or a duplicate came back: the stream moved under us. */
class FenceError extends Error {
  override readonly name = 'FenceError';
}

/** The connection to NATS is down; the client is reconnecting. */
class NatsDownError extends Error {
  override readonly name = 'NatsDownError';
}

export const subjectOf = (prefix: string, event: Pick<PublishedEvent, 'type'>) =>
  `${prefix}.${event.type}`;

function comparePositions(a: FeedPosition, b: FeedPosition): number {
  const tx = BigInt(a.txId) - BigInt(b.txId);
  if (tx !== 0n) return tx < 0n ? -1 : 1;
  const seq = BigInt(a.sequence) - BigInt(b.sequence);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

const apiCode = (error: unknown): number | undefined =>
  error instanceof NatsError ? error.api_error?.err_code : undefined;

/**
 * Creates `stream` for `<prefix>.>` when it does not exist: file storage, limits retention (it
 * keeps everything until an operator sets limits), JetStream's two-minute deduplication window.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  stream: string,
  subjectPrefix: string,
): Promise<void> {
  try {
    await jsm.streams.info(stream);
    return;
  } catch (error) {
    if (apiCode(error) !== STREAM_NOT_FOUND) throw error;
  }
  try {
    await jsm.streams.add({
      name: stream,
      subjects: [`${subjectPrefix}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(JETSTREAM_DUPLICATE_WINDOW_MS),
    });
  } catch (error) {
    // Another relay created it between our look and our add.
    if (apiCode(error) !== STREAM_NAME_IN_USE) throw error;
  }
}

/**
 * The relay from the commit-safe feed to JetStream. Each step reads the feed after the last event
 * in the stream and publishes it in feed order, each message with `Nats-Msg-Id` = the event id and
 * `Nats-Expected-Last-Sequence` = the stream sequence its predecessor got. That expectation is the
 * fence: a message is stored only directly after its feed predecessor, so the stream is always a
 * prefix of the feed, whatever a second or restarted relay does. On start, after any failure and
 * after a reconnection, the relay reconciles: it reads the stream's last message and resumes after
 * that event. The position in `job_state` is saved after the acknowledgement (for the lag and for
 * pruning); the stream, not the saved position, decides where publishing resumes.
 */
export function startJetStreamRelay(options: JetStreamRelayOptions): JetStreamRelay {
  const { db, logger, stream, subjectPrefix } = options;
  const batchSize = options.batchSize ?? JETSTREAM_BATCH_SIZE;
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let jsm: JetStreamManager | undefined;
  let isConnected = false;
  let streamReady = false;
  let cursor: Cursor | undefined;
  let stopped = false;
  const outage = outageLog(
    logger,
    { stream },
    {
      down: 'jetstream relay cannot publish (NATS or the database unreachable); retrying',
      up: 'jetstream relay publishing again',
    },
  );
  const encoder = new TextEncoder();

  async function connection(): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    if (nc && js && jsm) {
      if (!isConnected) throw new NatsDownError('NATS connection lost; reconnecting');
      return { js, jsm };
    }
    const conn = await connect({
      servers: options.servers.split(',').map((s) => s.trim()),
      name: 'fido-jetstream-relay',
      timeout: JETSTREAM_CONNECT_TIMEOUT_MS,
      maxReconnectAttempts: -1,
      reconnectTimeWait: JETSTREAM_RECONNECT_WAIT_MS,
    });
    if (stopped) {
      await conn.close();
      throw new Error('relay stopped');
    }
    nc = conn;
    isConnected = true;
    options.metrics?.connected.set(1);
    void (async () => {
      for await (const status of conn.status()) {
        if (status.type === Events.Disconnect) {
          isConnected = false;
          options.metrics?.connected.set(0);
        } else if (status.type === Events.Reconnect) {
          isConnected = true;
          options.metrics?.connected.set(1);
          // Acknowledgements may have been lost with the connection: ask the stream.
          cursor = undefined;
          loop.nudge();
        }
      }
    })();
    jsm = await conn.jetstreamManager();
    js = conn.jetstream();
    return { js, jsm };
  }

  /** Where the stream stands, from its last message. */
  async function reconcile(dbq: Db, manager: JetStreamManager): Promise<Cursor> {
    const info = await manager.streams.info(stream);
    const lastSeq = info.state.last_seq;
    const saved = await readJetStreamPosition(dbq);
    if (lastSeq === 0) {
      if (saved) {
        logger.warn({ stream }, 'jetstream stream is new or was emptied: relaying the whole feed');
      }
      return { position: undefined, lastSeq };
    }
    let eventId: string | undefined;
    try {
      const last = await manager.streams.getMessage(stream, { seq: lastSeq });
      eventId = last.header?.get('Nats-Msg-Id') || undefined;
    } catch (error) {
      if (apiCode(error) !== NO_MESSAGE_FOUND) throw error;
    }
    const position = eventId === undefined ? undefined : await feedPositionOf(dbq, eventId);
    if (position) {
      // A relay that died between its publish and its save left the saved position behind.
      if (!saved || comparePositions(saved, position) < 0) {
        await saveJetStreamPosition(dbq, position);
      }
      return { position, lastSeq };
    }
    // The last message aged out of the stream, or its event was pruned: pruning never passes
    // the saved position, so the saved position is at or past it.
    logger.warn(
      { stream, last_seq: lastSeq },
      "jetstream stream's last message is not an event in the database; resuming after the saved position",
    );
    return { position: saved, lastSeq };
  }

  /** Publishes `entries` pipelined, each fenced on its predecessor; how many went in, in order. */
  async function publishAll(
    client: JetStreamClient,
    entries: FeedEntry[],
    lastSeq: number,
  ): Promise<{ published: number; problem?: Error }> {
    const results: (PubAck | Error)[] = [];
    const inFlight = new Set<Promise<void>>();
    let failed = false;
    for (let i = 0; i < entries.length && !failed; i += 1) {
      const { event } = entries[i]!;
      const sent: Promise<void> = client
        .publish(subjectOf(subjectPrefix, event), encoder.encode(JSON.stringify(event)), {
          msgID: event.id,
          expect: { lastSequence: lastSeq + i },
          timeout: JETSTREAM_PUBLISH_TIMEOUT_MS,
        })
        .then(
          (ack) => {
            results[i] = ack;
            if (ack.duplicate || ack.seq !== lastSeq + i + 1) failed = true;
          },
          (error: unknown) => {
            results[i] = error instanceof Error ? error : new Error(String(error));
            failed = true;
          },
        )
        .finally(() => inFlight.delete(sent));
      inFlight.add(sent);
      if (inFlight.size >= JETSTREAM_IN_FLIGHT_MAX) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    let published = 0;
    for (; published < entries.length; published += 1) {
      const result = results[published];
      if (!result || result instanceof Error) break;
      if (result.duplicate || result.seq !== lastSeq + published + 1) break;
    }
    if (published === entries.length) return { published };
    const result = results[published];
    const problem =
      result === undefined
        ? new FenceError('a later publish failed first')
        : result instanceof Error
          ? apiCode(result) === WRONG_LAST_SEQUENCE
            ? new FenceError(result.message)
            : result
          : new FenceError(
              result.duplicate
                ? `event ${entries[published]!.event.id} is already in the stream`
                : `stored at sequence ${result.seq}, expected ${lastSeq + published + 1}`,
            );
    return { published, problem };
  }

  /** One batch: reconcile if needed, publish, save. Returns the events published. */
  async function relayBatch(
    dbq: Db,
    client: { js: JetStreamClient; jsm: JetStreamManager },
  ): Promise<{ published: number; problem?: Error }> {
    cursor ??= await reconcile(dbq, client.jsm);
    const from = cursor;
    const entries = await readFeed(dbq, { after: from.position, limit: batchSize });
    if (entries.length === 0) return { published: 0 };
    const { published, problem } = await publishAll(client.js, entries, from.lastSeq);
    if (published > 0) {
      // Until the save below, only the stream knows these are published.
      cursor = undefined;
      await options.afterPublish?.(published);
      const position = entries[published - 1]!.position;
      await saveJetStreamPosition(dbq, position);
      cursor = { position, lastSeq: from.lastSeq + published };
      options.metrics?.published.inc(published);
    }
    if (problem) cursor = undefined;
    return { published, problem };
  }

  /** One batch; true when it was full (more may be waiting). */
  async function step(): Promise<boolean> {
    const client = await connection();
    if (!streamReady) {
      await ensureStream(client.jsm, stream, subjectPrefix);
      streamReady = true;
    }
    const result = options.exclusive
      ? await db.transaction(async (dbTx) => {
          if (!(await tryJetStreamLock(dbTx))) {
            // Another relay is publishing: where the stream stands is for it to say.
            cursor = undefined;
            return { published: 0, busy: true };
          }
          return relayBatch(dbTx, client);
        })
      : await relayBatch(db, client);
    if ('problem' in result && result.problem) throw result.problem;
    return result.published === batchSize;
  }

  const loop = startLoop({
    pollMs: options.pollMs,
    step,
    succeeded: () => outage.succeeded(),
    failed(error) {
      cursor = undefined;
      if (error instanceof FenceError) {
        // Another relay got there first (or our own earlier publish did): start again from
        // what the stream holds.
        logger.info({ stream, reason: error.message }, 'jetstream relay fenced; reconciling');
        return true;
      }
      if (stopped) {
        // Closing the connection fails what was in flight; nothing to report.
      } else if (
        error instanceof NatsError ||
        error instanceof NatsDownError ||
        isDatabaseUnavailable(error)
      ) {
        outage.failed(error);
      } else {
        logger.error({ err: error, stream }, 'jetstream relay step failed');
      }
      return false;
    },
  });
  logger.info({ stream, subject_prefix: subjectPrefix }, 'jetstream relay started');

  return {
    nudge: () => loop.nudge(),
    connected: () => isConnected,
    async stop() {
      stopped = true;
      // Stops scheduling at once; the pass running ends once the connection is closed.
      const ended = loop.stop();
      const closing = nc;
      nc = undefined;
      // Closing first fails publishes that wait on a dead server at once.
      await closing?.close().catch(() => undefined);
      await ended;
      options.metrics?.connected.set(0);
    },
  };
}

/** Events committed but not yet in the stream (up to LAG_COUNT_CAP), from the saved position. */
export async function jetStreamLag(db: Db): Promise<number> {
  return countEventsAfter(db, await readJetStreamPosition(db), LAG_COUNT_CAP);
}

export interface JetStreamMetrics {
  published: Counter;
  connected: Gauge;
  lag: Gauge;
}

/** The relay's series; the lag is read from the database at each scrape. */
export function createJetStreamMetrics(
  registry: Registry,
  lag: () => Promise<number>,
): JetStreamMetrics {
  return {
    published: new Counter({
      name: 'fido_jetstream_published_total',
      help: 'Events published to JetStream and acknowledged, by this process',
      registers: [registry],
    }),
    connected: new Gauge({
      name: 'fido_jetstream_connected',
      help: 'Whether the relay in this process holds a connection to NATS (1) or not (0)',
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'fido_jetstream_lag_events',
      help: `Events committed but not yet in the JetStream stream (counted up to ${LAG_COUNT_CAP}); -1 when the database cannot say`,
      registers: [registry],
      async collect() {
        try {
          this.set(await lag());
        } catch {
          this.set(-1);
        }
      },
    }),
  };
}
