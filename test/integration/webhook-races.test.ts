import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  postTransaction,
  type TestDatabase,
} from '../helpers/app.js';
import { eventually, WebhookReceiver } from '../helpers/webhook-receiver.js';

/*
 * A webhook deleted while one of its deliveries is being sent (issue 12, defect 10): the attempt's
 * outcome has nowhere to go. The manual redelivery answers 404 and the worker ends the delivery
 * without a retry; neither fails on the foreign key of the attempt log (a 500 before).
 */

const WORKER_ENV = {
  WORKER: 'inline',
  WORKER_POLL_MS: '50',
  WEBHOOK_BACKOFF_BASE_MS: '20',
  WEBHOOK_BACKOFF_MAX_MS: '100',
  WEBHOOK_TIMEOUT_MS: '10000',
};

let database: TestDatabase;
let app: FastifyInstance;
let receiver: WebhookReceiver;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  database = await createTestDatabase();
  logs = captureLogs('info');
  app = await buildTestApp(database, { env: WORKER_ENV, deps: { logger: logs.logger } });
  receiver = await WebhookReceiver.start();
});

afterAll(async () => {
  await receiver?.close();
  await app?.close();
  await database?.drop();
});

/** A promise and the function that settles it. */
function gate(): { opened: Promise<number>; open: (status: number) => void } {
  let open: (status: number) => void = () => undefined;
  const opened = new Promise<number>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

async function createWebhook(path: string): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/webhooks',
    payload: { url: receiver.url(path) },
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ data: { id: string } }>().data.id;
}

describe('a webhook deleted while its delivery is in flight', () => {
  it('answers the manual redelivery 404, not 500', async () => {
    const held = gate();
    receiver.respond = (path, index) => (path === '/manual' && index >= 1 ? held.opened : 200);
    const hookId = await createWebhook('/manual');
    await postTransaction(app);
    const delivered = await eventually(
      async () => {
        const page = await app.inject(`/api/v1/webhooks/${hookId}/deliveries`);
        const [first] = page.json<{ data: { id: string; state: string }[] }>().data;
        return first?.state === 'succeeded' ? first : undefined;
      },
      { what: 'the first delivery to succeed' },
    );

    const redelivery = app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${hookId}/deliveries/${delivered.id}/redeliver`,
    });
    await eventually(() => (receiver.held.some((r) => r.path === '/manual') ? true : undefined), {
      what: 'the redelivery to reach the receiver',
    });
    const deleted = await app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hookId}` });
    expect(deleted.statusCode).toBe(200);
    held.open(200);

    const answer = await redelivery;
    expect(answer.statusCode, answer.body).toBe(404);
    expect(answer.json()).toMatchObject({ name: 'FidoTransactionsAPI' });
  });

  it('ends the worker attempt cleanly, without a retry or an error', async () => {
    const held = gate();
    receiver.respond = (path) => (path === '/automatic' ? held.opened : 200);
    const hookId = await createWebhook('/automatic');
    await postTransaction(app);
    await eventually(
      () => (receiver.held.some((r) => r.path === '/automatic') ? true : undefined),
      { what: 'the worker attempt to reach the receiver' },
    );
    const deleted = await app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hookId}` });
    expect(deleted.statusCode).toBe(200);
    // A failure: before the fix its record hit the foreign key; now it is simply dropped.
    held.open(503);

    await eventually(
      () => (logs.lines.some((line) => line.includes('delivery dropped')) ? true : undefined),
      { what: 'the worker to drop the delivery' },
    );
    const errors = logs.lines.filter((line) => line.includes('could not record a delivery'));
    expect(errors).toEqual([]);
    expect(receiver.held.filter((r) => r.path === '/automatic')).toHaveLength(1);
  });
});
