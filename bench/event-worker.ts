/**
 * The event worker under load: its backlog (from /metrics), waiting for it to catch up, and the
 * `webhook-delivery` scenario.
 *
 * `webhook-delivery` measures what the worker spends per delivered webhook. A receiver in the
 * bench process (on 127.0.0.1, answering 204) counts deliveries by their `Fido-Delivery-Id`; it is
 * registered as a webhook through the API. The API (`WORKER=off`) then takes a bounded number of
 * creates while the standalone worker (`node dist/worker.js`, a process of its own, so that its CPU
 * is the worker's alone) relays and delivers them. The worker's CPU from just before the first
 * create until the receiver has every delivery and the backlog is zero, over the number
 * delivered, is its CPU per webhook; the suite sets it against the hello world's CPU per request
 * in the same run.
 */
import http from 'node:http';
import type autocannon from 'autocannon';
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../src/db/client.js';
import { load } from './http.js';
import { readTreeCpuMs, sampleRss, type ServerProcess } from './processes.js';
import { unmeasured, type ScenarioResult } from './results.js';

/** The worker's backlog (committed events not relayed, deliveries pending), from /metrics. */
export async function workerBacklog(
  base: string,
  headers: Record<string, string>,
): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`, { headers })).text();
  const values = [...text.matchAll(/^fido_worker_backlog\{[^}]*\} (\S+)$/gm)].map((m) =>
    Number(m[1]),
  );
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
}

/** Polls `check` every 100 ms until it holds; throws after `limitMs`. */
async function waitFor(check: () => Promise<boolean>, limitMs: number, what: () => string) {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) {
      throw new Error(`${what()} ${Math.round(limitMs / 1000)} s on`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits (at most `limitMs`) until the worker has done what it was left; its backlog then. */
export async function drainWorker(
  base: string,
  headers: Record<string, string>,
  limitMs: number,
): Promise<{ backlogAtEnd: number; ms: number }> {
  const started = performance.now();
  const backlogAtEnd = await workerBacklog(base, headers);
  if (backlogAtEnd === undefined) {
    throw new Error('no fido_worker_backlog in /metrics: is the worker running?');
  }
  let backlog = backlogAtEnd;
  await waitFor(
    async () => (backlog = (await workerBacklog(base, headers)) ?? 0) === 0,
    limitMs,
    () => `the worker still had ${backlog} to do`,
  );
  return { backlogAtEnd, ms: performance.now() - started };
}

export interface WebhookReceiver {
  readonly url: string;
  /** Distinct deliveries received so far. */
  delivered(): number;
  /** POSTs received so far (a delivery sent again counts again). */
  posts(): number;
  /** Event creation to receipt, in ms, of the deliveries received since `from` (a count). */
  lagsMs(from: number): number[];
  close(): Promise<void>;
}

/** Longest webhook body the receiver reads: far above one event, bounded all the same. */
const RECEIVER_BODY_MAX_BYTES = 1024 * 1024;

/** An HTTP receiver on 127.0.0.1 that answers 204 to every POST and counts deliveries. */
export async function startReceiver(): Promise<WebhookReceiver> {
  const seen = new Set<string>();
  const lags: number[] = [];
  let posts = 0;
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= RECEIVER_BODY_MAX_BYTES) chunks.push(chunk);
    });
    request.on('end', () => {
      posts += 1;
      const id = request.headers['fido-delivery-id'];
      if (typeof id === 'string' && !seen.has(id)) {
        seen.add(id);
        try {
          const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            created_at?: string;
          };
          lags.push(Date.now() - Date.parse(event.created_at ?? ''));
        } catch {
          lags.push(Number.NaN);
        }
      }
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('receiver has no port');
  return {
    url: `http://127.0.0.1:${address.port}/hooks/fido`,
    delivered: () => seen.size,
    posts: () => posts,
    lagsMs: (from) => lags.slice(from),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The `webhook-delivery` scenario on a running API (`WORKER=off`) and worker process: registers
 * the receiver, warms the delivery path up with `warmup` creates, then counts the worker's CPU
 * over `deliveries` creates until every one is delivered and the backlog is zero.
 */
export async function measureWebhookDelivery(options: {
  name: string;
  description: string;
  api: ServerProcess;
  worker: ServerProcess;
  receiver: WebhookReceiver;
  headers: Record<string, string>;
  /** The database the API and the worker use: the delivery log is checked against the receiver. */
  db: Db;
  /** One create request per call, as autocannon sends them. */
  creates: () => autocannon.Request[];
  deliveries: number;
  warmup: number;
  connections: number;
  limitMs: number;
}): Promise<ScenarioResult> {
  const { api, worker, receiver, headers } = options;
  // Events left by earlier scenarios are relayed first (to nobody: the webhook is not there yet).
  await drainWorker(worker.url, headers, options.limitMs);
  const registered = await fetch(`${api.url}/api/v1/webhooks`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiver.url, description: 'bench receiver' }),
  });
  if (registered.status !== 201) {
    throw new Error(
      `registering the receiver answered ${registered.status}: ${await registered.text()}`,
    );
  }
  const webhookId = ((await registered.json()) as { data: { id: string } }).data.id;
  const receivedBefore = receiver.delivered();
  const deliveredAll = async (count: number) =>
    receiver.delivered() >= count && (await workerBacklog(worker.url, headers)) === 0;
  const run = async (amount: number) => {
    const target = receiver.delivered() + amount;
    const result = await load(api.url, {
      connections: Math.min(options.connections, amount),
      amount,
      requests: options.creates(),
    });
    if (result.responses < amount || result.errors > 0) {
      throw new Error(`${options.name}: ${result.errors} of ${amount} creates failed`);
    }
    await waitFor(
      () => deliveredAll(target),
      options.limitMs,
      () => `${options.name}: ${receiver.delivered()} of ${target} deliveries received`,
    );
    return result;
  };
  if (options.warmup > 0) await run(options.warmup);

  const from = receiver.delivered();
  const postsBefore = receiver.posts();
  const rss = sampleRss(worker.pid);
  const cpuBefore = readTreeCpuMs(worker.pid);
  const wallBefore = performance.now();
  let creates;
  let rssMaxMb: number | undefined;
  try {
    creates = await run(options.deliveries);
  } finally {
    rssMaxMb = rss.stop();
  }
  const wallMs = performance.now() - wallBefore;
  const cpuAfter = readTreeCpuMs(worker.pid);
  const cpuMs =
    cpuBefore && cpuAfter && cpuBefore.pids === cpuAfter.pids
      ? cpuAfter.ms - cpuBefore.ms
      : undefined;
  const delivered = receiver.delivered() - from;
  // Every delivery the receiver got is in the webhook's log as an automatic attempt: a batch that
  // delivered but logged nothing (as the recording statement once did) fails the run.
  const received = receiver.delivered() - receivedBefore;
  const [logged] = await queryRows<{ n: string | number }>(
    options.db,
    sql`select count(*) as n from delivery_attempts a join deliveries d
      on d.user_id = a.user_id and d.id = a.delivery_id
      where d.webhook_id = ${webhookId} and not a.manual`,
  );
  const attemptsLogged = Number(logged?.n ?? 0);
  if (attemptsLogged < received) {
    throw new Error(
      `${options.name}: the receiver got ${received} deliveries, the log has ${attemptsLogged} attempts`,
    );
  }
  const lags = receiver
    .lagsMs(from)
    .filter((ms) => Number.isFinite(ms))
    .sort((a, b) => a - b);
  const row: ScenarioResult = {
    name: options.name,
    kind: 'http',
    target: 'worker',
    description: options.description,
    // Deliveries per second, from the first create to the last delivery.
    requestsPerSecond: delivered / (wallMs / 1000),
    // From the event's creation to its receipt.
    p50Ms: percentile(lags, 50),
    p99Ms: percentile(lags, 99),
    errors: creates.errors,
    statusCodes: creates.statusCodes,
    ...unmeasured(),
    rssMaxMb: rssMaxMb ?? null,
    serverCpuPercent: cpuMs === undefined ? null : (cpuMs / wallMs) * 100,
    serverCpuMsPerRequest: cpuMs === undefined || delivered === 0 ? null : cpuMs / delivered,
    webhooksDelivered: delivered,
    webhookPostsRepeated: receiver.posts() - postsBefore - delivered,
    webhookAttemptsLogged: attemptsLogged,
  };
  console.log(
    `  ${options.name.padEnd(36)} ${Math.round(row.requestsPerSecond).toString().padStart(7)} deliveries/s` +
      `  ${delivered} delivered, lag p50 ${row.p50Ms} ms p99 ${row.p99Ms} ms` +
      `  worker CPU ${row.serverCpuMsPerRequest?.toFixed(3) ?? '?'} ms per delivery`,
  );
  return row;
}
