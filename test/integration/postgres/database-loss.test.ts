import { Writable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { openDatabase, type DatabaseHandle } from '../../../src/db/client.js';
import {
  createTestDatabase,
  testConfig,
  testKeyRing,
  type TestDatabase,
} from '../../helpers/app.js';
import { transactionBody } from '../../helpers/factories.js';
import { TcpProxy } from '../../helpers/tcp-proxy.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * The database goes away under a running service (a network cut, a failover) and comes back.
 * The service is built on a pool that reaches PostgreSQL only through a TCP proxy the test can
 * cut: while the database is unreachable every request answers 503 in the error shape, the
 * process survives its pool's broken connections, and once the network is back the service
 * works again without a restart.
 */

const POOL_SIZE = 4;

/** Every log line the app writes, parsed, so a test can see what an operator would. */
class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
  messages(): string[] {
    return this.lines.map((line) => String(line.msg));
  }
}

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  if (!database.url) {
    throw new Error('database-loss tests need a real PostgreSQL: set TEST_DATABASE_URL');
  }
});

afterAll(async () => {
  await database?.drop();
});

let proxy: TcpProxy;
let proxied: DatabaseHandle;
let app: FastifyInstance;
let logs: LogCapture;
let handleClosed: boolean;

beforeEach(async () => {
  const target = new URL(database.url as string);
  proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  await proxy.start();
  const throughProxy = new URL(target);
  throughProxy.hostname = '127.0.0.1';
  throughProxy.port = String(proxy.port);

  handleClosed = false;
  logs = new LogCapture();
  const logger = pino({ level: 'info' }, logs);
  proxied = await openDatabase({
    databaseUrl: throughProxy.toString(),
    dataDir: 'unused',
    poolSize: POOL_SIZE,
    statementTimeoutMs: 2_000,
    connectTimeoutMs: 500,
    logger,
  });
  app = await buildApp(testConfig(), { database: proxied, keyRing: testKeyRing(), logger });
});

afterEach(async () => {
  await app?.close();
  await proxy?.restore();
  // Bounded: a pool that lost track of a connection never finishes closing.
  if (!handleClosed) await closesWithin(proxied, 5_000);
  await proxy?.close();
});

/** Closes the handle; false when it has not finished within `ms` (a connection never returned). */
async function closesWithin(handle: DatabaseHandle | undefined, ms: number): Promise<boolean> {
  if (!handle) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([handle.close().then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function post(body: Record<string, unknown> = transactionBody()): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/api/v1/transaction/', payload: body });
}

function getById(id: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
}

function history(userId: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url: `/api/v1/transaction/history/${userId}` });
}

function expectUnavailable(response: LightMyRequestResponse, message: string): void {
  expect(response.statusCode).toBe(503);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expect(response.headers['retry-after']).toMatch(/^\d+$/);
  const body = response.json<Record<string, unknown>>();
  expect(body).toEqual({
    message,
    name: 'FidoTransactionsAPI',
    code: 'SERVICE_UNAVAILABLE',
    request_id: response.headers['x-request-id'],
  });
  expect(body.request_id).toEqual(expect.any(String));
}

/** Waits, boundedly, until the app has logged `message`. */
async function loggedEventually(message: string, within = 10_000): Promise<boolean> {
  const deadline = Date.now() + within;
  while (Date.now() < deadline) {
    if (logs.messages().includes(message)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

/** Puts several connections in the pool: concurrent reads each hold one. */
async function fillPool(id: string): Promise<void> {
  const reads = await Promise.all(Array.from({ length: POOL_SIZE }, () => getById(id)));
  for (const read of reads) expect(read.statusCode).toBe(200);
}

describe('the database becomes unreachable', () => {
  it('answers 503 in the error shape while it is gone, and recovers once it is back', async () => {
    const body = transactionBody({ full_name: 'Kofi Mensah' });
    const created = await post(body);
    expect(created.statusCode).toBe(201);
    const { id } = created.json<{ data: { id: string } }>().data;
    await fillPool(id);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);

    await proxy.cut();
    // The pool's idle connections break under it: that is logged, and the process lives on.
    expect(await loggedEventually('database connection lost')).toBe(true);

    expectUnavailable(await post(), 'An error occurred while adding the transaction');
    expectUnavailable(await getById(id), 'An error occurred while retrieving transaction data');
    expectUnavailable(
      await history(body.user_id as string),
      'Service is unavailable, please try again later',
    );
    const notReady = await app.inject({ method: 'GET', url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.headers['retry-after']).toMatch(/^\d+$/);
    expect(notReady.json()).toMatchObject({
      name: 'FidoTransactionsAPI',
      code: 'SERVICE_UNAVAILABLE',
      checks: { database: 'unavailable' },
    });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    // A request that is wrong in itself is answered as such, outage or not.
    const invalid = await app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: { ...body, transaction_amount: '1.001' },
    });
    expect(invalid.statusCode).toBe(422);

    await proxy.restore();

    expect((await post()).statusCode).toBe(201);
    const readBack = await getById(id);
    expect(readBack.statusCode).toBe(200);
    expect(readBack.json()).toMatchObject({ data: { id, full_name: 'Kofi Mensah' } });
    const userHistory = await history(body.user_id as string);
    expect(userHistory.statusCode).toBe(200);
    expect(userHistory.json<{ data: { id: string }[] }>().data.map((row) => row.id)).toEqual([id]);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('recovers when the connections in the pool were cut while idle', async () => {
    const created = await post();
    expect(created.statusCode).toBe(201);
    const { id } = created.json<{ data: { id: string } }>().data;
    await fillPool(id);

    // A blip: every pooled connection dies, and the database is reachable again at once.
    await proxy.cut();
    await proxy.restore();

    // The pool may hand out a connection whose death it has not noticed yet; that request
    // fails, in the error shape, and the one after it works.
    const first = await getById(id);
    if (first.statusCode !== 200) {
      expectUnavailable(first, 'An error occurred while retrieving transaction data');
      expect((await getById(id)).statusCode).toBe(200);
    }
    expect((await post()).statusCode).toBe(201);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('keeps recovering, write after write, across more blips than the pool has connections', async () => {
    for (let blip = 1; blip <= POOL_SIZE + 2; blip += 1) {
      const before = await post();
      expect(before.statusCode, `a write before blip ${blip}`).toBe(201);

      await proxy.cut();
      await proxy.restore();

      // A write right after the blip may meet a dead pooled connection: one failure at worst.
      // Sent on a connection that then failed, its outcome is unknown to the service (504), or
      // it never left (503).
      const first = await post();
      if (first.statusCode === 504) {
        expect(first.json()).toMatchObject({ code: 'WRITE_OUTCOME_UNKNOWN' });
      } else if (first.statusCode !== 201) {
        expectUnavailable(first, 'An error occurred while adding the transaction');
      }
      if (first.statusCode !== 201) {
        expect((await post()).statusCode, `the write after the failure of blip ${blip}`).toBe(201);
      }
    }
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    // Every connection went back to the pool, so the service can still shut down cleanly.
    const closed = await closesWithin(proxied, 5_000);
    handleClosed = true;
    expect(closed, 'closing the pool finished (no connection was lost track of)').toBe(true);
  });
});

describe('the database hangs (a TCP black hole: connections open, nothing answered)', () => {
  /** The service's configured bounds (DB_HANG_TIMEOUT_MS, and /readyz's own). */
  const HANG_TIMEOUT_MS = 3_000;
  const READINESS_BOUND_MS = 2_000;
  /** Recovery: the service answers within this of the database answering again. */
  const RECOVERY_BOUND_MS = 2_000;
  /** Timer and scheduling slack on a loaded machine; still far below the requests' own bounds. */
  const SLACK_MS = 1_500;

  /** The answer and how long it took, measured around the call. */
  async function timed(
    request: () => Promise<LightMyRequestResponse>,
  ): Promise<{ response: LightMyRequestResponse; ms: number }> {
    const started = performance.now();
    const response = await request();
    return { response, ms: performance.now() - started };
  }

  it('answers 503 with Retry-After within the hang bound, fails fast while it lasts, and recovers by itself', async () => {
    // Bounds of its own so long that, without the breaker, a request would wait 20 s.
    const target = new URL(database.url as string);
    target.hostname = '127.0.0.1';
    target.port = String(proxy.port);
    const patient = await openDatabase({
      databaseUrl: target.toString(),
      dataDir: 'unused',
      poolSize: POOL_SIZE,
      statementTimeoutMs: 20_000,
      connectTimeoutMs: 10_000,
      hangTimeoutMs: HANG_TIMEOUT_MS,
      logger: pino({ level: 'info' }, logs),
    });
    const hung = await buildApp(testConfig(), {
      database: patient,
      keyRing: testKeyRing(),
      logger: pino({ level: 'info' }, logs),
    });
    try {
      const created = await hung.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        payload: transactionBody(),
      });
      expect(created.statusCode).toBe(201);
      const { id, user_id: userId } = created.json<{ data: { id: string; user_id: string } }>()
        .data;
      const read = () => hung.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
      const reads = await Promise.all(Array.from({ length: POOL_SIZE }, read));
      for (const each of reads) expect(each.statusCode).toBe(200);

      proxy.hang();

      // Arriving while the database has just stopped answering: each waits at most the bound.
      const first = await Promise.all([
        timed(read),
        timed(() =>
          hung.inject({
            method: 'GET',
            url: '/api/v1/transaction/0192f0c4-0000-7000-8000-000000000000',
          }),
        ),
        timed(() =>
          hung.inject({ method: 'POST', url: '/api/v1/transaction/', payload: transactionBody() }),
        ),
        timed(() => hung.inject({ method: 'GET', url: '/readyz' })),
      ]);
      for (const [index, { response, ms }] of first.entries()) {
        // A write whose statement was already sent into the black hole cannot say whether it was
        // applied: it answers 504 WRITE_OUTCOME_UNKNOWN instead (retry with the same key).
        if (index === 2 && response.statusCode === 504) {
          expect(response.json()).toMatchObject({ code: 'WRITE_OUTCOME_UNKNOWN' });
        } else {
          expect(response.statusCode, `request ${index}: ${response.body}`).toBe(503);
          expect(response.headers['retry-after']).toMatch(/^\d+$/);
        }
        expect(ms, `request ${index} answered 503 rather than hanging`).toBeLessThan(
          (index === 3 ? READINESS_BOUND_MS : HANG_TIMEOUT_MS) + SLACK_MS,
        );
      }
      expect(
        await loggedEventually('database not answering: failing fast (503) until it does'),
      ).toBe(true);

      // Known down: every request needing the database fails fast, with the route's message.
      for (const request of [
        read,
        () =>
          hung.inject({ method: 'POST', url: '/api/v1/transaction/', payload: transactionBody() }),
        () => hung.inject({ method: 'GET', url: `/api/v1/transaction/history/${userId}-other` }),
        () => hung.inject({ method: 'GET', url: '/readyz' }),
      ]) {
        const { response, ms } = await timed(request);
        expect(response.statusCode).toBe(503);
        expect(response.headers['retry-after']).toMatch(/^\d+$/);
        expect(ms).toBeLessThan(READINESS_BOUND_MS + SLACK_MS);
      }
      expectUnavailable(await read(), 'An error occurred while retrieving transaction data');
      expect((await hung.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

      await proxy.restore();
      const restoredAt = performance.now();
      const back = await eventually(
        async () => {
          const response = await read();
          return response.statusCode === 200 ? performance.now() - restoredAt : undefined;
        },
        { what: 'the service to recover', timeoutMs: 15_000, intervalMs: 50 },
      );
      expect(back, 'recovered within the bound of the database answering again').toBeLessThan(
        RECOVERY_BOUND_MS + SLACK_MS,
      );
      expect((await hung.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      expect(logs.messages()).toContain('database answering again');
    } finally {
      await hung.close();
      await closesWithin(patient, 5_000);
    }
  });
});
