import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  type TestDatabase,
} from '../helpers/app.js';
import { transactionBody } from '../helpers/factories.js';

const { logger, lines } = captureLogs('trace');
let database: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildTestApp(database, { deps: { logger } });
});

afterAll(async () => {
  await app.close();
  await database.drop();
});

it('logs one line per request with its request id, and never a name', async () => {
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    headers: { 'x-request-id': 'trace-me-1' },
    payload: transactionBody({ full_name: 'Yaa Asantewaa' }),
  });
  expect(created.statusCode).toBe(201);
  const { id } = created.json().data;
  await app.inject({
    method: 'PATCH',
    url: `/api/v1/transaction/${id}`,
    payload: { full_name: 'Nana Yaa Asantewaa' },
  });
  await app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
  await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody({ full_name: 'Yaa Asantewaa', transaction_amount: -1 }),
  });

  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(line).not.toMatch(/Asantewaa/);
  const completed = lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === 'request completed');
  expect(completed).toHaveLength(4);
  expect(completed[0]).toMatchObject({ request_id: 'trace-me-1', status: 201, method: 'POST' });
  for (const entry of completed) expect(entry.request_id).toEqual(expect.any(String));
});

/*
 * The destination the app opens when it is given no logger (the server's: stdout, written
 * asynchronously), here pointed at a file so the test can read what an operator would see.
 */
describe('the log destination the app opens', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fido-logs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function appLoggingTo(file: string): Promise<FastifyInstance> {
    return buildTestApp(database, { env: { LOG_LEVEL: 'info' }, deps: { logFile: file } });
  }
  async function linesOf(file: string): Promise<Record<string, unknown>[]> {
    const text = await readFile(file, 'utf8');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  /** The file descriptors this process still holds open on `file`. */
  async function openHandlesOn(file: string): Promise<number> {
    let count = 0;
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      if (target === file) count += 1;
    }
    return count;
  }

  it('counts on /metrics every line it drops once 16 MiB wait, and writes all the others', async () => {
    const file = path.join(dir, 'burst.log');
    const own = await appLoggingTo(file);
    // About 20 MiB logged in one go, faster than any write can finish: past 16 MiB, lines drop.
    const count = 20_000;
    const padding = 'x'.repeat(1_000);
    for (let i = 0; i < count; i += 1) own.log.info({ i, padding }, 'burst');
    const scrape = await own.inject('/metrics');
    expect(scrape.statusCode).toBe(200);
    const dropped = Number(/^fido_log_lines_dropped_total (\d+)$/m.exec(scrape.body)?.[1]);
    expect(dropped).toBeGreaterThan(0);
    await own.close();
    const written = (await linesOf(file)).filter((line) => line.msg === 'burst');
    expect(written.length + dropped).toBe(count);
  });

  it('has written every line, and holds no handle, once the app has closed', async () => {
    const file = path.join(dir, 'close.log');
    const own = await appLoggingTo(file);
    // Some megabytes still being written when close begins.
    for (let i = 0; i < 4_000; i += 1) own.log.info({ i, padding: 'y'.repeat(1_000) }, 'busy');
    own.log.info('the last line before close');
    expect(await openHandlesOn(file)).toBe(1);
    await own.close();
    const messages = (await linesOf(file)).map((line) => line.msg);
    expect(messages.filter((msg) => msg === 'busy')).toHaveLength(4_000);
    expect(messages.at(-1)).toBe('the last line before close');
    expect(await openHandlesOn(file)).toBe(0);
    // A line logged after close (a server's "shut down cleanly") is written at once.
    own.log.info('after close');
    expect((await linesOf(file)).at(-1)?.msg).toBe('after close');
  });
});
