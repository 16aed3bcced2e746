import { createHmac, timingSafeEqual } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueUserId } from '../helpers/factories.js';
import { postTransaction, useTestApp } from '../helpers/app.js';
import { eventually, WebhookReceiver, type ReceivedRequest } from '../helpers/webhook-receiver.js';

/** Fast retries and a short retry window, so "dead" arrives within the test. */
const WORKER_ENV = {
  WORKER: 'inline',
  WORKER_POLL_MS: '50',
  WEBHOOK_BACKOFF_BASE_MS: '20',
  WEBHOOK_BACKOFF_MAX_MS: '100',
  WEBHOOK_TIMEOUT_MS: '2000',
  // 1.8 seconds.
  WEBHOOK_RETRY_HOURS: '0.0005',
};

interface WebhookData {
  id: string;
  url: string;
  secret?: string;
  event_types: string[];
  active: boolean;
}
interface DeliveryData {
  id: string;
  event_id: string;
  state: string;
  attempt_count: number;
  attempts: { status_code: number | null; error: string | null; manual: boolean }[];
}
interface EventBody {
  id: string;
  type: string;
  user_id: string;
  transaction_id: string;
  data: { transaction: Record<string, unknown>; previous?: Record<string, unknown> };
}

/** The receiver's side of the contract: every v1 that matches one of `secrets`. */
function validSignatures(request: ReceivedRequest, secrets: string[]): number {
  const header = String(request.headers['fido-signature']);
  const parts = header.split(',').map((part) => part.split('=') as [string, string]);
  const timestamp = parts.find(([k]) => k === 't')?.[1];
  const expected = secrets.map((secret) =>
    createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest(),
  );
  return parts
    .filter(([k]) => k === 'v1')
    .filter(([, v]) => expected.some((e) => timingSafeEqual(e, Buffer.from(v, 'hex')))).length;
}

describe('webhooks', () => {
  const ctx = useTestApp({ env: WORKER_ENV });
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await receiver.close();
  });

  async function createWebhook(body: Record<string, unknown>): Promise<WebhookData> {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      payload: body,
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json<{ data: WebhookData }>().data;
  }

  async function deliveries(webhookId: string): Promise<DeliveryData[]> {
    const response = await ctx.app.inject(`/api/v1/webhooks/${webhookId}/deliveries?limit=100`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ data: DeliveryData[] }>().data;
  }

  it('shows the secret once, and validates the URL', async () => {
    const created = await createWebhook({ url: receiver.url('/secret-once'), active: false });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const read = await ctx.app.inject(`/api/v1/webhooks/${created.id}`);
    expect(read.statusCode).toBe(200);
    expect(read.body).not.toContain(created.secret);
    const listed = await ctx.app.inject('/api/v1/webhooks');
    expect(listed.body).not.toContain(created.secret);
    expect(listed.json<{ data: WebhookData[] }>().data.map((w) => w.id)).toContain(created.id);

    for (const url of ['ftp://example.com/x', 'not a url', 'https://user:pw@example.com/']) {
      const refused = await ctx.app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        payload: { url },
      });
      expect(refused.statusCode, url).toBe(422);
      expect(refused.json<{ detail: { loc: string[] }[] }>().detail[0]?.loc).toEqual([
        'body',
        'url',
      ]);
    }
    const missing = await ctx.app.inject('/api/v1/webhooks/0192f0c4-0000-7000-8000-000000000000');
    expect(missing.statusCode).toBe(404);
    expect(missing.json<{ code: string }>().code).toBe('WEBHOOK_NOT_FOUND');
  });

  it('delivers created, updated and deleted events, signed, in order per user, without names', async () => {
    const hook = await createWebhook({ url: receiver.url('/ordered') });
    const users = [uniqueUserId(), uniqueUserId()];
    const expected = new Map<string, string[]>();
    for (const userId of users) {
      const created = await postTransaction(ctx.app, { user_id: userId, full_name: 'Kofi Mensah' });
      const updated = await ctx.app.inject({
        method: 'PATCH',
        url: `/api/v1/transaction/${created.id}`,
        payload: { transaction_amount: 250 },
      });
      expect(updated.statusCode).toBe(200);
      const deleted = await ctx.app.inject({
        method: 'DELETE',
        url: `/api/v1/transaction/${created.id}`,
      });
      expect(deleted.statusCode).toBe(200);
      expected.set(userId, ['transaction.created', 'transaction.updated', 'transaction.deleted']);
    }

    const received = await eventually(
      () => {
        const got = receiver.accepted('/ordered');
        return got.length >= 6 ? got : undefined;
      },
      { what: 'six deliveries' },
    );
    expect(received).toHaveLength(6);
    for (const userId of users) {
      const mine = received
        .map((r) => ({ request: r, event: JSON.parse(r.body) as EventBody }))
        .filter(({ event }) => event.user_id === userId);
      expect(mine.map(({ event }) => event.type)).toEqual(expected.get(userId));
      for (const { request, event } of mine) {
        expect(validSignatures(request, [hook.secret!])).toBe(1);
        expect(request.headers['fido-event-id']).toBe(event.id);
        expect(request.headers['fido-event-type']).toBe(event.type);
        expect(request.body).not.toContain('Kofi');
        expect(event.data.transaction).not.toHaveProperty('full_name');
      }
      const updated = mine[1]!.event;
      expect(updated.data.previous?.transaction_amount).toBe(100);
      expect(updated.data.transaction.transaction_amount).toBe(250);
    }
    // A tampered body no longer matches its signature.
    const tampered = {
      ...received[0]!,
      body: received[0]!.body.replace('transaction', 'tampered'),
    };
    expect(validSignatures(tampered, [hook.secret!])).toBe(0);

    // The receiver answers before the worker records the outcome.
    const log = await eventually(async () => {
      const rows = await deliveries(hook.id);
      return rows.every((d) => d.state === 'succeeded') ? rows : undefined;
    });
    expect(log).toHaveLength(6);
    expect(log.map((d) => d.attempts.length)).toEqual([1, 1, 1, 1, 1, 1]);
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}` });
  });

  it('pages deliveries by the cursors it issues, and refuses any other spelling of one', async () => {
    const hook = await createWebhook({ url: receiver.url('/paged') });
    for (let i = 0; i < 3; i += 1) await postTransaction(ctx.app);
    const all = await eventually(async () => {
      const rows = await deliveries(hook.id);
      return rows.length === 3 ? rows : undefined;
    });
    const url = (query: string) => `/api/v1/webhooks/${hook.id}/deliveries?limit=1&${query}`;
    const paged: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const response: LightMyRequestResponse = await ctx.app.inject(
        url(cursor ? `cursor=${cursor}` : ''),
      );
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json<{
        data: DeliveryData[];
        pagination: { next_cursor: string | null };
      }>();
      paged.push(...body.data.map((d) => d.id));
      cursor = body.pagination.next_cursor;
      if (cursor !== null) {
        // The same position spelled with leading zeros (20 digits, or just one more) is refused
        // as any bad cursor is: one cursor per position.
        const error = async (query: string) => {
          const response = await ctx.app.inject(url(query));
          return { status: response.statusCode, ...response.json(), request_id: undefined };
        };
        const invalid = await error('cursor=x');
        expect(invalid.status).toBe(422);
        for (const padded of [cursor.padStart(20, '0'), `0${cursor}`]) {
          expect(await error(`cursor=${padded}`), padded).toEqual(invalid);
        }
      }
    }
    expect(paged).toEqual(all.map((d) => d.id));
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}` });
  });

  it('retries a receiver that fails twice, and it gets exactly one successful delivery', async () => {
    receiver.respond = (path, index) => (path === '/flaky' && index < 2 ? 500 : 200);
    const hook = await createWebhook({ url: receiver.url('/flaky') });
    const created = await postTransaction(ctx.app);

    const [delivery] = await eventually(
      async () => {
        const log = await deliveries(hook.id);
        return log[0]?.state === 'succeeded' ? log : undefined;
      },
      { what: 'the flaky delivery to succeed' },
    );
    expect(delivery?.attempts.map((a) => a.status_code)).toEqual([500, 500, 200]);
    expect(delivery?.attempt_count).toBe(3);
    const accepted = receiver.accepted('/flaky');
    expect(accepted).toHaveLength(1);
    const event = JSON.parse(accepted[0]!.body) as EventBody;
    expect(event.transaction_id).toBe(created.id);
    // All three attempts carried the same event id: receivers dedupe on it.
    expect(
      new Set(
        receiver.requests.filter((r) => r.path === '/flaky').map((r) => r.headers['fido-event-id']),
      ).size,
    ).toBe(1);
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}` });
  });

  it('marks a dead endpoint dead with every attempt logged, and redelivers by hand', async () => {
    let healed = false;
    receiver.respond = (path) => (path === '/dead' && !healed ? 503 : 200);
    const hook = await createWebhook({ url: receiver.url('/dead') });
    await postTransaction(ctx.app);

    const [dead] = await eventually(
      async () => {
        const log = await deliveries(hook.id);
        return log[0]?.state === 'dead' ? log : undefined;
      },
      { what: 'the delivery to die', timeoutMs: 15_000 },
    );
    expect(dead!.attempt_count).toBeGreaterThanOrEqual(2);
    expect(dead!.attempts).toHaveLength(dead!.attempt_count);
    expect(dead!.attempts.every((a) => a.status_code === 503 && a.error === 'HTTP 503')).toBe(true);
    const attemptsSeen = receiver.requests.filter((r) => r.path === '/dead').length;
    expect(attemptsSeen).toBe(dead!.attempt_count);

    const metrics = await ctx.app.inject('/metrics');
    expect(metrics.body).toMatch(/^fido_deliveries_dead_total\{kind="webhook"\} 1$/m);
    expect(metrics.body).toMatch(
      /^fido_delivery_attempt_duration_seconds_count\{kind="webhook",outcome="failed"\} [1-9]/m,
    );

    healed = true;
    const redelivered = await ctx.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${hook.id}/deliveries/${dead!.id}/redeliver`,
    });
    expect(redelivered.statusCode, redelivered.body).toBe(200);
    const after = redelivered.json<{ data: DeliveryData }>().data;
    expect(after.state).toBe('succeeded');
    expect(after.attempts.at(-1)).toMatchObject({ status_code: 200, manual: true });
    const accepted = receiver.accepted('/dead');
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.headers['fido-event-id']).toBe(dead!.event_id);

    const unknown = await ctx.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${hook.id}/deliveries/0192f0c4-0000-7000-8000-000000000000/redeliver`,
    });
    expect(unknown.statusCode).toBe(404);
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}` });
  });

  it('signs with both secrets during a rotation overlap, then only the new one', async () => {
    receiver.respond = () => 200;
    const hook = await createWebhook({
      url: receiver.url('/rotated'),
      event_types: ['transaction.created'],
    });
    const rotated = await ctx.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${hook.id}/rotate-secret`,
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const { secret: next, previous_secret_expires_at } = rotated.json<{
      data: WebhookData & { previous_secret_expires_at: string };
    }>().data;
    expect(next).not.toBe(hook.secret);
    expect(Date.parse(previous_secret_expires_at)).toBeGreaterThan(Date.now());

    const created = await postTransaction(ctx.app);
    // Filtered: the update is not delivered to this webhook.
    await ctx.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${created.id}`,
      payload: { description: 'x' },
    });
    const [first] = await eventually(() => {
      const got = receiver.accepted('/rotated');
      return got.length >= 1 ? got : undefined;
    });
    expect(validSignatures(first!, [hook.secret!])).toBe(1);
    expect(validSignatures(first!, [next!])).toBe(1);

    const ended = await ctx.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${hook.id}/rotate-secret?overlap_hours=0`,
    });
    const newest = ended.json<{ data: WebhookData }>().data.secret!;
    await postTransaction(ctx.app);
    const [, second] = await eventually(() => {
      const got = receiver.accepted('/rotated');
      return got.length >= 2 ? got : undefined;
    });
    expect(validSignatures(second!, [newest])).toBe(1);
    expect(validSignatures(second!, [hook.secret!, next!])).toBe(0);
    expect(receiver.accepted('/rotated').map((r) => r.headers['fido-event-type'])).toEqual([
      'transaction.created',
      'transaction.created',
    ]);
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}` });
  });
});
