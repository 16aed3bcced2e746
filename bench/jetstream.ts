/**
 * The JetStream relay (docs/jetstream.md), on the machine's NATS server (BENCH_NATS_URL, default
 * nats://127.0.0.1:4222) with a stream and subject prefix of this run's own, deleted afterwards:
 *
 * 1. backlog: BENCH_RELAY_EVENTS (20,000) events written straight into `events`, then one relay
 *    started from scratch: events/s until the stream holds them all;
 * 2. under load: POST creates (a new user each) for BENCH_SECONDS (5) against the API in this
 *    process with the relay inline, the lag (events committed but not yet in the stream) sampled
 *    every 100 ms; then the time the relay takes to reach a lag of 0. The same load without
 *    NATS_URL first, for the create rate's ratio.
 *
 *   npm run bench -- --scenario jetstream                 (embedded PGlite)
 *   BENCH_DATABASE_URL=postgres://…@127.0.0.1:5432/postgres npm run bench -- --scenario jetstream
 *
 * Results: printed, and bench/results/jetstream/<date>.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { connect } from 'nats';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { jetStreamLag, startJetStreamRelay } from '../src/modules/events/index.js';
import { queryRows } from '../src/db/client.js';
import { createLogger } from '../src/platform/logging.js';
import { listen, load, openBenchDatabase } from './http.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = path.join(ROOT, 'bench', 'results', 'jetstream');
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const BACKLOG = Number(process.env.BENCH_RELAY_EVENTS ?? 20_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
/** Bounds every wait: a relay that cannot keep up fails the run instead of hanging it. */
const DRAIN_TIMEOUT_MS = 120_000;

async function until(check: () => Promise<boolean>, what: string): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > DRAIN_TIMEOUT_MS) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return performance.now() - started;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
};

export async function jetStreamScenario(): Promise<void> {
  if (new URL(NATS_URL).hostname !== '127.0.0.1') {
    throw new Error('BENCH_NATS_URL must point at 127.0.0.1 (benchmarks stay on this machine)');
  }
  const id = randomBytes(4).toString('hex');
  const stream = `FIDO_BENCH_${id}`;
  const prefix = `fido-bench-${id}.events`;
  const database = await openBenchDatabase();
  const db = database.handle.db;
  const logger = createLogger('warn');
  const keyRing = { activeKeyId: 'bench', keys: new Map([['bench', randomBytes(32)]]) };
  const rows: Record<string, string | number>[] = [];
  try {
    // 1. A backlog relayed from scratch.
    await db.execute(sql`insert into events (id, user_id, type, transaction_id, payload)
      select gen_random_uuid(), 'bench-user-' || (g % 1000), 'transaction.created',
        gen_random_uuid(),
        jsonb_build_object('transaction', jsonb_build_object('transaction_amount', g,
          'currency', 'GHS', 'transaction_type', 'credit', 'description', 'bench'))
      from generate_series(1, ${BACKLOG}) as g`);
    const relay = startJetStreamRelay({
      db,
      exclusive: database.handle.kind === 'postgres',
      servers: NATS_URL,
      stream,
      subjectPrefix: prefix,
      pollMs: 50,
      logger,
    });
    const backlogMs = await until(
      async () => (await jetStreamLag(db)) === 0,
      'the backlog to reach the stream',
    );
    await relay.stop();
    rows.push({
      phase: 'backlog',
      events: BACKLOG,
      'events/s relayed': Math.round(BACKLOG / (backlogMs / 1000)),
      seconds: (backlogMs / 1000).toFixed(2),
    });

    // 2. Under the create load, without and with the relay.
    for (const withRelay of [true, false]) {
      const config = loadConfig({
        ...process.env,
        LOG_LEVEL: 'warn',
        SCHEDULER: 'off',
        WORKER: 'inline',
        DATA_DIR: 'memory://',
        RATE_LIMIT_MAX: '0',
        RATE_LIMIT_IP_MAX: '0',
        ...(withRelay
          ? { NATS_URL, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: prefix }
          : { NATS_URL: '' }),
      });
      const app = await buildApp(config, {
        database: database.handle,
        keyRing,
        logger: createLogger('error'),
      });
      try {
        const base = await listen(app);
        const eventsBefore = await countEvents();
        const lags: number[] = [];
        let sampling = withRelay;
        const sampler = (async () => {
          while (sampling) {
            lags.push(await jetStreamLag(db));
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        })();
        let n = 0;
        const result = await load(`${base}/api/v1/transaction/`, {
          seconds: SECONDS,
          connections: CONNECTIONS,
          requests: [
            {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              setupRequest: (request) => ({
                ...request,
                body: JSON.stringify({
                  user_id: `bench-load-${id}-${(n += 1)}`,
                  full_name: 'Ama Owusu',
                  transaction_amount: '100.50',
                  transaction_type: 'credit',
                }),
              }),
            },
          ],
        });
        sampling = false;
        await sampler;
        const written = (await countEvents()) - eventsBefore;
        const row: Record<string, string | number> = {
          phase: withRelay ? 'create load, relay on' : 'create load, NATS_URL unset',
          events: written,
          'create req/s': Math.round(result.requestsPerSecond),
          errors: result.errors,
        };
        if (withRelay) {
          const drainMs = await until(
            async () => (await jetStreamLag(db)) === 0,
            'the relay to catch up after the load',
          );
          row['lag p50'] = quantile(lags, 0.5);
          row['lag max'] = Math.max(0, ...lags);
          row['drain s'] = (drainMs / 1000).toFixed(2);
          row['events/s relayed'] = Math.round(written / (SECONDS + drainMs / 1000));
          // The stream holds the backlog and every event of the loaded run, once.
          const held = await streamMessages(stream);
          const total = await countEvents();
          if (held !== total) throw new Error(`stream holds ${held} messages, the feed ${total}`);
          console.log(`stream ${stream}: ${held} messages, every event of the feed once`);
        }
        rows.push(row);
      } finally {
        await app.close();
      }
    }
    const on = rows.find((r) => r.phase === 'create load, relay on');
    const off = rows.find((r) => r.phase === 'create load, NATS_URL unset');
    if (on && off) {
      on['× create without'] = (Number(on['create req/s']) / Number(off['create req/s'])).toFixed(
        2,
      );
    }
    console.table(rows);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const date = new Date().toISOString();
    const file = path.join(RESULTS_DIR, `${date.replace(/:/g, '-').replace(/\..*/, 'Z')}.json`);
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          date,
          database: database.handle.kind,
          node: process.version,
          machine: { cpus: os.cpus().length, loadAverage1m: os.loadavg()[0] ?? 0 },
          settings: { backlog: BACKLOG, seconds: SECONDS, connections: CONNECTIONS },
          notes: [
            'backlog: events inserted straight into the table, then one relay from scratch (500 per batch, 128 acks in flight)',
            'create load: autocannon in this process against the API in this process (WORKER=inline), one new user per request',
            'lag: events committed but not yet in the stream, sampled every 100 ms during the load',
            'drain s: after the load, until the lag is 0; events/s relayed: events of the load over load + drain time',
          ],
          results: rows,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`results: ${path.relative(ROOT, file)}`);
  } finally {
    await deleteStream(stream).catch(() => undefined);
    await database.drop();
  }

  async function countEvents(): Promise<number> {
    const [row] = await queryRows<{ n: string | number }>(
      db,
      sql`select count(*) as n from events`,
    );
    return Number(row?.n ?? 0);
  }
}

async function streamMessages(stream: string): Promise<number> {
  const nc = await connect({ servers: NATS_URL });
  try {
    const info = await (await nc.jetstreamManager()).streams.info(stream);
    return info.state.messages;
  } finally {
    await nc.close();
  }
}

async function deleteStream(stream: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  try {
    await (await nc.jetstreamManager()).streams.delete(stream);
  } finally {
    await nc.close();
  }
}
