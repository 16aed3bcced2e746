import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateKeys } from '../../src/platform/key-rotation.js';
import { FieldCipher, type KeyRing } from '../../src/platform/crypto.js';
import { queryRows } from '../../src/db/client.js';
import {
  buildTestApp,
  captureLogs,
  createTestDatabase,
  type TestDatabase,
} from '../helpers/app.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

interface TransactionView {
  id: string;
  user_id: string;
  full_name: string;
  transaction_date: string;
  version: number;
}

const KEY_1 = randomBytes(32);
const KEY_2 = randomBytes(32);
/** Ring A: the only key is k1. */
const RING_A: KeyRing = { activeKeyId: 'k1', keys: new Map([['k1', KEY_1]]) };
/** Ring B: new writes under k2, values under k1 still readable. */
const RING_B: KeyRing = {
  activeKeyId: 'k2',
  keys: new Map([
    ['k2', KEY_2],
    ['k1', KEY_1],
  ]),
};

const CIPHERTEXT_FORMAT = /^v1\.(k1|k2)\.[A-Za-z0-9_-]+$/;

let db: TestDatabase;
/** The service as deployed before the rotation: ring A, with its log lines captured. */
let appA: FastifyInstance;
/** The service after the switch to ring B. */
let appB: FastifyInstance | undefined;
const { logger, lines: logLines } = captureLogs('info');
/** Every transaction this file created and the name it must read back as. */
const expectedNames = new Map<string, string>();

beforeAll(async () => {
  db = await createTestDatabase();
  appA = await buildTestApp(db, { deps: { keyRing: RING_A, logger } });
});

afterAll(async () => {
  await appB?.close();
  await appA.close();
  await db.drop();
});

async function create(
  app: FastifyInstance,
  overrides: Record<string, unknown> = {},
): Promise<TransactionView> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody(overrides),
  });
  expect(res.statusCode, res.body).toBe(201);
  const row = res.json<{ data: TransactionView }>().data;
  expectedNames.set(row.id, row.full_name);
  return row;
}

async function ciphertextOf(id: string): Promise<string> {
  const [row] = await queryRows<{ full_name_ciphertext: string }>(
    db.handle.db,
    sql`select full_name_ciphertext from transactions where id = ${id}::uuid`,
  );
  if (!row) throw new Error(`no row ${id}`);
  return row.full_name_ciphertext;
}

async function setCiphertext(id: string, ciphertext: string): Promise<void> {
  await db.handle.db.execute(
    sql`update transactions set full_name_ciphertext = ${ciphertext} where id = ${id}::uuid`,
  );
}

async function countUnderKey(keyId: string): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    db.handle.db,
    sql`select count(*)::int as n from transactions where full_name_ciphertext like ${`v1.${keyId}.%`}`,
  );
  return row!.n;
}

async function countAll(): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    db.handle.db,
    sql`select count(*)::int as n from transactions`,
  );
  return row!.n;
}

/** The ways a name could show up in stored text without being encrypted. */
function disclosuresOf(name: string): string[] {
  const bytes = Buffer.from(name, 'utf8');
  return [
    name,
    name.toLowerCase(),
    name.toUpperCase(),
    JSON.stringify(name).slice(1, -1),
    bytes.toString('base64'),
    bytes.toString('base64url'),
    bytes.toString('hex'),
  ].filter((text) => text.length >= 4);
}

function expectNoName(text: string, names: Iterable<string>): void {
  for (const name of names) {
    for (const disclosure of disclosuresOf(name)) {
      if (text.includes(disclosure)) {
        throw new Error(`stored text discloses ${JSON.stringify(name)}: ${text.slice(0, 200)}`);
      }
    }
  }
}

async function expectAllReadable(app: FastifyInstance): Promise<void> {
  const problems: string[] = [];
  for (const [id, name] of expectedNames) {
    const res = await app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
    if (res.statusCode !== 200) {
      problems.push(`${id}: ${res.statusCode}`);
    } else if (res.json<{ data: TransactionView }>().data.full_name !== name) {
      problems.push(`${id}: wrong name`);
    }
  }
  expect(problems).toEqual([]);
}

const NAMES = [
  'Kwabena Zelda Mensah-Quartey',
  'Ñandú Ōkubo 李雷 🙂',
  'Abena O\'Neil "Quoted" \\ Backslash',
];

describe('names at rest', () => {
  const created: TransactionView[] = [];

  beforeAll(async () => {
    const userId = uniqueUserId('at-rest');
    for (const fullName of NAMES) {
      created.push(await create(appA, { user_id: userId, full_name: fullName }));
    }
  });

  it('reads back the name through the API', async () => {
    for (const row of created) {
      const res = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${row.id}` });
      expect(res.statusCode).toBe(200);
      expect(res.json<{ data: TransactionView }>().data.full_name).toBe(expectedNames.get(row.id));
    }
    expect(created.map((row) => row.full_name)).toEqual(NAMES);
  });

  it('stores only v1.<keyId>.<base64url> ciphertext, bound to the row id', async () => {
    const cipher = new FieldCipher(RING_A);
    for (const row of created) {
      const stored = await ciphertextOf(row.id);
      expect(stored).toMatch(/^v1\.k1\.[A-Za-z0-9_-]+$/);
      expectNoName(stored, [row.full_name]);
      expect(cipher.decrypt(stored, row.id)).toBe(row.full_name);
      // The row id is the associated data: under any other id it does not decrypt.
      const otherId = created.find((other) => other.id !== row.id)!.id;
      expect(() => cipher.decrypt(stored, otherId)).toThrow(/authentication failed/);
    }
  });

  it('keeps the name out of every column of the row', async () => {
    for (const row of created) {
      const [stored] = await queryRows<{ row_text: string }>(
        db.handle.db,
        sql`select t::text as row_text from transactions t where t.id = ${row.id}::uuid`,
      );
      expect(stored?.row_text).toContain(row.id);
      expectNoName(stored!.row_text, NAMES);
    }
  });

  it('keeps names out of event payloads, for creates, updates and deletes', async () => {
    const target = created[0]!;
    const renamed = 'Renamed Yaw Boateng-Smith';
    const patch = await appA.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${target.id}`,
      payload: { full_name: renamed, description: 'renamed' },
    });
    expect(patch.statusCode, patch.body).toBe(200);
    expect(patch.json<{ data: TransactionView }>().data.full_name).toBe(renamed);
    expectedNames.set(target.id, renamed);

    const doomed = await create(appA, { full_name: 'Doomed Delali Agbeko' });
    const remove = await appA.inject({ method: 'DELETE', url: `/api/v1/transaction/${doomed.id}` });
    expect(remove.statusCode).toBe(200);
    expectedNames.delete(doomed.id);

    const events = await queryRows<{ type: string; payload: string }>(
      db.handle.db,
      sql`select type, payload::text as payload from events`,
    );
    expect(new Set(events.map((event) => event.type))).toEqual(
      new Set(['transaction.created', 'transaction.updated', 'transaction.deleted']),
    );
    for (const event of events) {
      expectNoName(event.payload, [...NAMES, renamed, 'Doomed Delali Agbeko']);
    }
    // Payloads describe the transaction, just without the name.
    const updated = events.find((event) => event.type === 'transaction.updated')!;
    expect(updated.payload).toContain(target.id);
    expect(updated.payload).toContain('renamed');
  });

  it('encrypts the same name differently in two rows, and again on every write', async () => {
    const name = 'Esi Twin-Name Appiah';
    const first = await create(appA, { full_name: name });
    const second = await create(appA, { full_name: name });
    const firstStored = await ciphertextOf(first.id);
    const secondStored = await ciphertextOf(second.id);
    expect(firstStored).not.toBe(secondStored);
    expectNoName(firstStored, [name]);
    expectNoName(secondStored, [name]);

    // Rewriting the same name produces a fresh ciphertext (a fresh nonce), not a repeat.
    const rewrite = await appA.inject({
      method: 'PUT',
      url: `/api/v1/transaction/${first.id}`,
      payload: { full_name: name },
    });
    expect(rewrite.statusCode).toBe(200);
    expect(rewrite.json<{ data: TransactionView }>().data.full_name).toBe(name);
    const rewritten = await ciphertextOf(first.id);
    expect(rewritten).not.toBe(firstStored);
    expect(rewritten).not.toBe(secondStored);
  });
});

describe('a ciphertext that does not belong to its row', () => {
  function expectOpaque500(res: { statusCode: number; body: string }, secrets: string[]): void {
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toEqual({
      message: 'Internal server error',
      name: 'FidoTransactionsAPI',
      code: 'INTERNAL_ERROR',
      request_id: expect.any(String),
    });
    for (const secret of secrets) expect(res.body).not.toContain(secret);
    expect(res.body.toLowerCase()).not.toContain('decrypt');
    expect(res.body).not.toContain('v1.');
  }

  it('copied from another row: reading that row answers an opaque 500, other rows still read', async () => {
    const sourceName = 'Xavier Copysource Danquah';
    const targetName = 'Yolanda Targetrow Ansah';
    const userId = uniqueUserId('tamper');
    const source = await create(appA, { user_id: userId, full_name: sourceName });
    const target = await create(appA, { user_id: userId, full_name: targetName });
    const sourceStored = await ciphertextOf(source.id);
    const targetStored = await ciphertextOf(target.id);

    await db.handle.db.execute(sql`
      update transactions
      set full_name_ciphertext = (select full_name_ciphertext from transactions where id = ${source.id}::uuid)
      where id = ${target.id}::uuid`);
    expect(await ciphertextOf(target.id)).toBe(sourceStored);

    const secrets = [sourceName, targetName, sourceStored, targetStored];
    const read = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${target.id}` });
    expectOpaque500(read, secrets);
    // The history that includes the row fails the same way rather than serving the wrong name.
    const history = await appA.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${userId}`,
    });
    expectOpaque500(history, secrets);

    const untouched = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${source.id}` });
    expect(untouched.statusCode).toBe(200);
    expect(untouched.json<{ data: TransactionView }>().data.full_name).toBe(sourceName);

    // Putting the row's own ciphertext back makes it readable again.
    await setCiphertext(target.id, targetStored);
    const restored = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${target.id}` });
    expect(restored.statusCode).toBe(200);
    expect(restored.json<{ data: TransactionView }>().data.full_name).toBe(targetName);
  });

  it('tampered or under an unknown key: an opaque 500 as well', async () => {
    const name = 'Zainab Tampered Osei';
    const row = await create(appA, { full_name: name });
    const stored = await ciphertextOf(row.id);
    const payload = stored.slice('v1.k1.'.length);
    const flipped = `${payload.slice(0, 20)}${payload[20] === 'A' ? 'B' : 'A'}${payload.slice(21)}`;
    for (const bad of [
      `v1.k1.${flipped}`,
      `v1.kX.${payload}`,
      `v1.k1.${payload.slice(0, 10)}`,
      name,
    ]) {
      await setCiphertext(row.id, bad);
      const res = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${row.id}` });
      expectOpaque500(res, [name, stored, bad]);
    }
    await setCiphertext(row.id, stored);
    const restored = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${row.id}` });
    expect(restored.json<{ data: TransactionView }>().data.full_name).toBe(name);
  });
});

describe('key rotation', () => {
  const cipherB = new FieldCipher(RING_B);

  it('re-encrypts every name under the new active key, readable with the new ring', async () => {
    for (let i = 0; i < 12; i++) {
      await create(appA, { user_id: `rotation-user-${i % 3}`, full_name: `Rotated Person ${i}` });
    }
    const total = await countAll();
    expect(await countUnderKey('k1')).toBe(total);
    expect(total).toBe(expectedNames.size);

    const result = await rotateKeys(db.handle.db, cipherB, { batchSize: 5 });
    expect(result).toEqual({ scanned: total, reencrypted: total, failed: 0, interrupted: false });
    expect(await countUnderKey('k1')).toBe(0);
    expect(await countUnderKey('k2')).toBe(total);
    const ciphertexts = await queryRows<{ id: string; full_name_ciphertext: string }>(
      db.handle.db,
      sql`select id, full_name_ciphertext from transactions`,
    );
    for (const row of ciphertexts) {
      expect(row.full_name_ciphertext).toMatch(CIPHERTEXT_FORMAT);
      expect(row.full_name_ciphertext.startsWith('v1.k1.')).toBe(false);
      expectNoName(row.full_name_ciphertext, [expectedNames.get(row.id)!]);
    }

    appB = await buildTestApp(db, { deps: { keyRing: RING_B } });
    await expectAllReadable(appB);

    // The old ring alone can no longer read them: the values really moved to k2.
    const [someId] = expectedNames.keys();
    const stale = await appA.inject({ method: 'GET', url: `/api/v1/transaction/${someId}` });
    expect(stale.statusCode).toBe(500);

    // Nothing left to do: a second run touches nothing.
    expect(await rotateKeys(db.handle.db, cipherB, { batchSize: 5 })).toEqual({
      scanned: 0,
      reencrypted: 0,
      failed: 0,
      interrupted: false,
    });
  });

  it('stops between batches when aborted, and a second run finishes the job', async () => {
    for (let i = 0; i < 23; i++) {
      await create(appA, { user_id: `late-user-${i % 4}`, full_name: `Late Person ${i}` });
    }
    expect(await countUnderKey('k1')).toBe(23);

    // Already aborted: nothing is touched.
    const before = await rotateKeys(db.handle.db, cipherB, {
      batchSize: 5,
      signal: AbortSignal.abort(),
    });
    expect(before).toEqual({ scanned: 0, reencrypted: 0, failed: 0, interrupted: true });
    expect(await countUnderKey('k1')).toBe(23);

    // The progress log runs after each committed batch: abort from there, after the first.
    const controller = new AbortController();
    let progressReports = 0;
    const logger = {
      warn() {},
      info() {
        progressReports += 1;
        controller.abort();
      },
    } as unknown as FastifyBaseLogger;
    const first = await rotateKeys(db.handle.db, cipherB, {
      batchSize: 5,
      signal: controller.signal,
      logger,
    });
    expect(first).toEqual({ scanned: 5, reencrypted: 5, failed: 0, interrupted: true });
    expect(progressReports).toBe(1);
    expect(await countUnderKey('k1')).toBe(18);

    // Half-rotated data is fully readable with the new ring.
    await expectAllReadable(appB!);

    const second = await rotateKeys(db.handle.db, cipherB, { batchSize: 5 });
    expect(second).toEqual({ scanned: 18, reencrypted: 18, failed: 0, interrupted: false });
    expect(await countUnderKey('k1')).toBe(0);
    expect(await countUnderKey('k2')).toBe(await countAll());
    await expectAllReadable(appB!);
  });

  it('never wrote a name into the events or the logs', async () => {
    const events = await queryRows<{ payload: string }>(
      db.handle.db,
      sql`select payload::text as payload from events`,
    );
    expect(events.length).toBeGreaterThan(expectedNames.size);
    const names = [...expectedNames.values(), ...NAMES];
    for (const event of events) expectNoName(event.payload, names);
    expect(logLines.length).toBeGreaterThan(0);
    expectNoName(logLines.join('\n'), names);
  });
});
