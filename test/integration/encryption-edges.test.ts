import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { FieldCipher, type KeyRing } from '../../src/platform/crypto.js';
import { queryRows } from '../../src/db/client.js';
import { rotateKeys } from '../../src/platform/key-rotation.js';
import { buildTestApp, useTestApp } from '../helpers/app.js';
import { transactionBody } from '../helpers/factories.js';

const OLD_KEY = randomBytes(32);
const NEW_KEY = randomBytes(32);
// Ids that differ only where LIKE would see a wildcard: rotation must still tell them apart.
const OLD_RING: KeyRing = { activeKeyId: 'key-2', keys: new Map([['key-2', OLD_KEY]]) };
const NEW_RING: KeyRing = {
  activeKeyId: 'key_2',
  keys: new Map([
    ['key_2', NEW_KEY],
    ['key-2', OLD_KEY],
  ]),
};

const context = useTestApp({ deps: { keyRing: OLD_RING } });

async function create(overrides: Record<string, unknown> = {}, headers = {}) {
  const response = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    headers,
    payload: transactionBody(overrides),
  });
  expect(response.statusCode, response.body).toBe(201);
  return { body: response.body, data: response.json().data as { id: string; full_name: string } };
}

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(context.database.handle.db, query);

describe('stored idempotent responses', () => {
  // The same request twice: a replay must match the first byte for byte.
  const request = transactionBody({ full_name: 'Adwoa Idempotent Boateng' });

  it('hold no plaintext name, replay after rotation, and rotate with the rest', async () => {
    const first = await create(request, { 'idempotency-key': 'edge-1' });
    const stored = await rows<{ row: string }>(sql`select i::text as row from idempotency_keys i`);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.row).not.toContain('Adwoa');
    expect(stored[0]!.row).toContain('v1.key-2.');
    // The request fingerprint is keyed: a list of likely names cannot be hashed to find it.
    const [hash] = await rows<{ h: string }>(sql`select request_hash as h from idempotency_keys`);
    expect(hash!.h).toMatch(/^v1\.key-2\.[A-Za-z0-9_-]{43}$/);

    const result = await rotateKeys(context.database.handle.db, new FieldCipher(NEW_RING), {
      batchSize: 2,
    });
    expect(result.failed).toBe(0);
    const leftovers = await rows<{ n: number }>(sql`
      select (select count(*) from transactions where full_name_ciphertext like 'v1.key-2.%')
           + (select count(*) from idempotency_keys where response_body like 'v1.key-2.%') as n`);
    expect(Number(leftovers[0]!.n)).toBe(0);

    const rotatedApp = await buildTestApp(context.database, { deps: { keyRing: NEW_RING } });
    try {
      const replay = await rotatedApp.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        headers: { 'idempotency-key': 'edge-1' },
        payload: request,
      });
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.body).toBe(first.body);
    } finally {
      await rotatedApp.close();
    }
  });
});

describe('damaged values', () => {
  it('rotation skips and counts a value it cannot decrypt, and rotates the rest', async () => {
    const damaged = await create({ full_name: 'Damaged Row' });
    const healthy = await create({ full_name: 'Healthy Row' });
    await context.database.handle.db.execute(
      sql`update transactions set full_name_ciphertext = 'v1.key-2.AAAA' where id = ${damaged.data.id}::uuid`,
    );
    const warnings: unknown[] = [];
    const result = await rotateKeys(context.database.handle.db, new FieldCipher(NEW_RING), {
      logger: { info() {}, warn: (entry: unknown) => warnings.push(entry) },
    });
    expect(result.failed).toBe(1);
    expect(result.interrupted).toBe(false);
    expect(JSON.stringify(warnings)).toContain(damaged.data.id);
    const [healthyRow] = await rows<{ c: string }>(
      sql`select full_name_ciphertext as c from transactions where id = ${healthy.data.id}::uuid`,
    );
    expect(healthyRow!.c.startsWith('v1.key_2.')).toBe(true);
  });

  it('a write whose response cannot be built is rolled back, not committed behind a 500', async () => {
    const { data } = await create({ full_name: 'Rollback Row' });
    await context.database.handle.db.execute(
      sql`update transactions set full_name_ciphertext = 'v1.key-2.AAAA' where id = ${data.id}::uuid`,
    );
    const response = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${data.id}`,
      payload: { description: 'changed' },
    });
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('Rollback');
    const [row] = await rows<{ version: number; description: string | null }>(
      sql`select version, description from transactions where id = ${data.id}::uuid`,
    );
    expect(row).toEqual({ version: 1, description: null });
  });
});
