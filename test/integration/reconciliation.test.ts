import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { v7 as uuidv7 } from 'uuid';
import { reconcileUser, runReconciliation } from '../../src/modules/analytics/reconciliation.js';
import { insertImportBatch } from '../../src/modules/legacy/legacy.repository.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { postTransaction, useTestApp } from '../helpers/app.js';
import { uniqueUserId } from '../helpers/factories.js';

const context = useTestApp();
const db = () => context.database.handle.db;

const create = (overrides: Record<string, unknown>) => postTransaction(context.app, overrides);

async function allTime(userId: string) {
  return (await context.app.inject({ method: 'GET', url: `/api/v1/analytics/${userId}` })).json();
}

const NO_DRIFT = { rows: 0, count: 0, amountMinor: 0n };

describe('reconciliation', () => {
  it('finds no drift after creates, updates, deletes and an import', async () => {
    const userId = uniqueUserId();
    const write = async (method: 'PUT' | 'DELETE', id: string, payload?: object) => {
      const response = await context.app.inject({
        method,
        url: `/api/v1/transaction/${id}`,
        ...(payload ? { payload } : {}),
      });
      expect(response.statusCode).toBe(200);
    };
    const kept = await create({ user_id: userId, transaction_amount: 10.5, currency: 'USD' });
    const moved = await create({
      user_id: userId,
      transaction_type: 'debit',
      transaction_date: '2024-03-01T23:30:00Z',
    });
    const gone = await create({ user_id: userId, currency: 'EUR' });
    const importedAt = new Date('2024-02-29T12:00:00Z');
    const imported = uuidv7();
    await insertImportBatch(
      db(),
      [
        {
          id: imported,
          legacyId: null,
          userId,
          fullNameCiphertext: context.app.cipher.encrypt('Imported Person', imported),
          transactionDate: importedAt,
          amountMinor: 1234n,
          transactionType: 'credit',
          currency: 'GHS',
          description: null,
          metadata: null,
          version: 1,
          createdAt: importedAt,
          updatedAt: importedAt,
        },
      ],
      { timeZone: 'UTC' },
    );
    expect(await reconcileUser(db(), userId, 'UTC')).toEqual(NO_DRIFT);

    await write('PUT', kept.id, { transaction_amount: 3 });
    await write('PUT', moved.id, {
      transaction_type: 'credit',
      transaction_date: '2024-03-02T00:30:00Z',
      currency: 'USD',
    });
    await write('PUT', imported, { transaction_amount: 99.99 });
    await write('DELETE', gone.id);
    expect(await reconcileUser(db(), userId, 'UTC')).toEqual(NO_DRIFT);
    // The last transaction of its day and currency goes: no empty rollup row may stay behind.
    await write('DELETE', moved.id);
    expect(await reconcileUser(db(), userId, 'UTC')).toEqual(NO_DRIFT);
  });

  it('finds a corrupted rollup, repairs it and reports exactly the drift', async () => {
    const userId = uniqueUserId();
    await create({
      user_id: userId,
      transaction_amount: 100,
      transaction_date: '2024-10-10T09:00:00Z',
    });
    await create({
      user_id: userId,
      transaction_amount: 20,
      transaction_date: '2024-10-11T09:00:00Z',
    });
    expect(await reconcileUser(db(), userId, 'UTC')).toEqual({
      rows: 0,
      count: 0,
      amountMinor: 0n,
    });

    // 5.00 GHS of drift in the all-time row, and one transaction too many on a day.
    await db().execute(
      sql`update user_stats set credit_total_minor = credit_total_minor + 500 where user_id = ${userId}`,
    );
    await db().execute(sql`update user_daily_stats set transaction_count = transaction_count + 1,
      credit_count = credit_count + 1 where user_id = ${userId} and day = '2024-10-11'`);
    expect((await allTime(userId)).data.credit_total).toBe(125);

    const metrics = createMetrics();
    const warnings: unknown[] = [];
    const result = await runReconciliation(db(), {
      timeZone: 'UTC',
      batchSize: 100,
      metrics,
      invalidate: (user) => context.app.cache.invalidate(user),
      logger: { info() {}, warn: (entry: unknown) => warnings.push(entry) },
    });
    expect(result.drift).toEqual({ rows: 2, count: 1, amountMinor: 500n });
    expect(warnings).toContainEqual(
      expect.objectContaining({ user_id: userId, drift_rows: 2, drift_amount_minor: '500' }),
    );
    const exposition = await metrics.registry.metrics();
    expect(exposition).toMatch(/fido_reconciliation_drift_amount_minor_total 500\b/);
    expect(exposition).toMatch(/fido_reconciliation_drift_rows_total 2\b/);

    const repaired = (await allTime(userId)).data;
    expect(repaired).toMatchObject({ credit_total: 120, highest_transactions_day_count: 1 });
    expect(await reconcileUser(db(), userId, 'UTC')).toEqual({
      rows: 0,
      count: 0,
      amountMinor: 0n,
    });
  });

  it('removes rollups no transaction backs, and rebuilds missing ones', async () => {
    const userId = uniqueUserId();
    await create({
      user_id: userId,
      transaction_amount: 7,
      transaction_date: '2024-01-01T00:00:00Z',
    });
    await db().execute(sql`delete from user_daily_stats where user_id = ${userId}`);
    await db()
      .execute(sql`insert into user_stats (user_id, currency, transaction_count, credit_count,
      debit_count, credit_total_minor, debit_total_minor) values (${userId}, 'USD', 1, 1, 0, 300, 0)`);
    const drift = await reconcileUser(db(), userId, 'UTC');
    expect(drift).toEqual({ rows: 2, count: 2, amountMinor: 1000n });
    const usd = await context.app.inject({
      method: 'GET',
      url: `/api/v1/analytics/${userId}?currency=USD`,
    });
    expect(usd.statusCode).toBe(404);
    expect((await allTime(userId)).data.highest_transactions_day).toBe('2024-01-01');
  });

  it('reaches every user through the rolling sweep, a bounded batch per run', async () => {
    const users = [uniqueUserId('sweep'), uniqueUserId('sweep'), uniqueUserId('sweep')];
    for (const userId of users) await create({ user_id: userId });
    for (const userId of users) {
      await db().execute(
        sql`update user_stats set debit_total_minor = 1 where user_id = ${userId}`,
      );
    }
    let repaired = 0;
    for (let run = 0; run < 20 && repaired < users.length; run += 1) {
      repaired += (await runReconciliation(db(), { timeZone: 'UTC', batchSize: 2 })).drift.rows;
    }
    expect(repaired).toBe(users.length);
  });
});
