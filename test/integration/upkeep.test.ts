import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneEvents, relayEvents } from '../../src/modules/events/outbox.js';
import { FieldCipher, type KeyRing } from '../../src/platform/crypto.js';
import { queryRows } from '../../src/db/client.js';
import { rotateKeys } from '../../src/platform/key-rotation.js';
import {
  buildTestApp,
  createTestDatabase,
  postTransaction,
  type TestDatabase,
} from '../helpers/app.js';
import { eventually, WebhookReceiver } from '../helpers/webhook-receiver.js';

describe('scheduled upkeep of events and webhooks', () => {
  let database: TestDatabase;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    database = await createTestDatabase();
    receiver = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await receiver.close();
    await database.drop();
  });

  it('prunes completed deliveries and relayed events past retention, and nothing still owed', async () => {
    const db = database.handle.db;
    const app = await buildTestApp(database, { env: { WORKER: 'off' } });
    try {
      const hook = (
        await app.inject({
          method: 'POST',
          url: '/api/v1/webhooks',
          payload: { url: receiver.url('/prune') },
        })
      ).json<{ data: { id: string } }>().data.id;
      const done = await postTransaction(app);
      const owed = await postTransaction(app);
      const recent = await postTransaction(app);
      await eventually(async () =>
        (await relayEvents(db, { batchSize: 100, retryWindowMs: 3_600_000 })) === 0
          ? true
          : undefined,
      );
      // Two old events: one delivered long ago, one still owed to the webhook.
      await db.execute(sql`update events set created_at = now() - interval '100 days'
        where transaction_id in (${done.id}, ${owed.id})`);
      await db.execute(sql`update deliveries set state = 'succeeded', completed_at = now() - interval '100 days'
        where event_id = (select id from events where transaction_id = ${done.id})`);

      const pruned = await pruneEvents(db, {
        retentionDays: 90,
        batchSize: 1,
        deadline: Date.now() + 10_000,
      });
      expect(pruned).toEqual({ expired: 0, deliveries: 1, events: 1 });
      const left = await queryRows<{ transaction_id: string }>(
        db,
        sql`select transaction_id from events order by sequence`,
      );
      expect(left.map((e) => e.transaction_id)).toEqual([owed.id, recent.id]);
      const deliveries = await app.inject(`/api/v1/webhooks/${hook}/deliveries`);
      expect(deliveries.json<{ data: unknown[] }>().data).toHaveLength(2);

      // Paused past its retry window, the owed delivery expires; then its event can go too.
      await app.inject({
        method: 'PATCH',
        url: `/api/v1/webhooks/${hook}`,
        payload: { active: false },
      });
      await db.execute(sql`update deliveries set retry_until = now() - interval '2 hours'
        where event_id = (select id from events where transaction_id = ${owed.id})`);
      const expired = await pruneEvents(db, {
        retentionDays: 90,
        batchSize: 10,
        deadline: Date.now() + 10_000,
      });
      expect(expired).toEqual({ expired: 1, deliveries: 0, events: 1 });
      const log = await app.inject(`/api/v1/webhooks/${hook}/deliveries?state=dead`);
      expect(log.json<{ data: { last_error: string }[] }>().data[0]?.last_error).toMatch(
        /^Expired/,
      );
    } finally {
      await app.close();
    }
  });

  it('relays a backlog larger than a batch to several webhooks, and no history to a new one', async () => {
    const database = await createTestDatabase();
    const db = database.handle.db;
    const app = await buildTestApp(database, { env: { WORKER: 'off' } });
    try {
      const hook = async (path: string) =>
        (
          await app.inject({
            method: 'POST',
            url: '/api/v1/webhooks',
            payload: { url: receiver.url(path) },
          })
        ).json<{ data: { id: string } }>().data.id;
      const first = await hook('/backlog-1');
      const second = await hook('/backlog-2');
      for (let i = 0; i < 250; i += 1) await postTransaction(app);
      const late = await hook('/backlog-late');
      let relayed = 0;
      for (let n = -1; n !== 0; relayed += n) {
        n = await relayEvents(db, { batchSize: 200, retryWindowMs: 3_600_000 });
      }
      expect(relayed).toBe(250);
      const counts = await queryRows<{ webhook_id: string; n: number | string }>(
        db,
        sql`select webhook_id, count(*) as n from deliveries group by webhook_id`,
      );
      const byHook = new Map(counts.map((c) => [c.webhook_id, Number(c.n)]));
      expect(byHook.get(first)).toBe(250);
      expect(byHook.get(second)).toBe(250);
      expect(byHook.get(late)).toBeUndefined();
    } finally {
      await app.close();
      await database.drop();
    }
  }, 120_000);

  it('rotate-keys re-encrypts webhook secrets, and deliveries stay signed with the same secret', async () => {
    // A database of its own: every value in it is under the keys below.
    const database = await createTestDatabase();
    const oldKey = randomBytes(32);
    const before: KeyRing = { activeKeyId: 'k1', keys: new Map([['k1', oldKey]]) };
    const after: KeyRing = {
      activeKeyId: 'k2',
      keys: new Map([
        ['k2', randomBytes(32)],
        ['k1', oldKey],
      ]),
    };
    const first = await buildTestApp(database, {
      env: { WORKER: 'off' },
      deps: { keyRing: before },
    });
    const created = await first.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      payload: { url: receiver.url('/rotated-key') },
    });
    const { id, secret } = created.json<{ data: { id: string; secret: string } }>().data;
    await first.close();

    const cipher = new FieldCipher(after);
    const result = await rotateKeys(database.handle.db, cipher);
    expect(result.failed).toBe(0);
    const [row] = await queryRows<{ secret_ciphertext: string }>(
      database.handle.db,
      sql`select secret_ciphertext from webhooks where id = ${id}`,
    );
    expect(row?.secret_ciphertext.startsWith(cipher.activePrefix)).toBe(true);

    const second = await buildTestApp(database, {
      env: { WORKER: 'inline', WORKER_POLL_MS: '50' },
      deps: { keyRing: after },
    });
    try {
      await postTransaction(second);
      const [delivery] = await eventually(() => {
        const got = receiver.accepted('/rotated-key');
        return got.length > 0 ? got : undefined;
      });
      const { createHmac } = await import('node:crypto');
      const [t, v1] = String(delivery!.headers['fido-signature']).split(',');
      const expected = createHmac('sha256', secret)
        .update(`${t!.slice(2)}.${delivery!.body}`)
        .digest('hex');
      expect(v1).toBe(`v1=${expected}`);
    } finally {
      await second.close();
      await database.drop();
    }
  });
});
