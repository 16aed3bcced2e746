import { describe, expect, it } from 'vitest';
import { postTransaction, useTestApp } from '../helpers/app.js';
import { uniqueUserId } from '../helpers/factories.js';

const context = useTestApp();

const create = (overrides: Record<string, unknown>) => postTransaction(context.app, overrides);

async function analytics(url: string) {
  const response = await context.app.inject({ method: 'GET', url });
  return { status: response.statusCode, body: response.json() };
}

/** The fixture user: two days, three transactions on the first. */
async function fixtureUser(): Promise<string> {
  const userId = uniqueUserId('fixture');
  await create({
    user_id: userId,
    transaction_date: '2024-10-10T09:00:00Z',
    transaction_amount: 100,
    transaction_type: 'credit',
  });
  await create({
    user_id: userId,
    transaction_date: '2024-10-10T09:00:00Z',
    transaction_amount: 50,
    transaction_type: 'debit',
  });
  await create({
    user_id: userId,
    transaction_date: '2024-10-10T18:00:00Z',
    transaction_amount: 30,
    transaction_type: 'debit',
  });
  await create({
    user_id: userId,
    transaction_date: '2024-10-11T09:00:00Z',
    transaction_amount: 20,
    transaction_type: 'credit',
  });
  return userId;
}

describe('GET /api/v1/analytics/{user_id}', () => {
  it('answers the fixture user exactly', async () => {
    const userId = await fixtureUser();
    const { status, body } = await analytics(`/api/v1/analytics/${userId}`);
    expect(status).toBe(200);
    expect(body.message).toBe('Transaction analytics retrieved successfully');
    expect(body.data).toMatchObject({
      user_id: userId,
      currency: 'GHS',
      average_transaction_value: 50,
      highest_transactions_day: '2024-10-10',
      highest_transactions_day_count: 3,
      credit_total: 120,
      debit_total: 80,
      net_total: 40,
      credit_total_minor: '12000',
      debit_total_minor: '8000',
      net_total_minor: '4000',
      transaction_count: 4,
      credit_count: 2,
      debit_count: 2,
      first_transaction_date: '2024-10-10T09:00:00.000Z',
      last_transaction_date: '2024-10-11T09:00:00.000Z',
    });
    expect(Date.parse(body.data.last_updated)).not.toBeNaN();
  });

  it('is current the moment a write commits: update and delete move the figures', async () => {
    const userId = uniqueUserId();
    const a = await create({
      user_id: userId,
      transaction_date: '2024-01-01T10:00:00Z',
      transaction_amount: 10,
    });
    await create({
      user_id: userId,
      transaction_date: '2024-01-02T10:00:00Z',
      transaction_amount: 5,
      transaction_type: 'debit',
    });
    await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${a.id}`,
      payload: { transaction_date: '2024-01-02T11:00:00Z', transaction_amount: 7 },
    });
    let { body } = await analytics(`/api/v1/analytics/${userId}`);
    expect(body.data).toMatchObject({
      credit_total: 7,
      debit_total: 5,
      highest_transactions_day: '2024-01-02',
      highest_transactions_day_count: 2,
      first_transaction_date: '2024-01-02T10:00:00.000Z',
    });
    await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${a.id}`,
      payload: { currency: 'USD' },
    });
    ({ body } = await analytics(`/api/v1/analytics/${userId}`));
    expect(body.data).toMatchObject({ transaction_count: 1, credit_total: 0, debit_total: 5 });
    ({ body } = await analytics(`/api/v1/analytics/${userId}?currency=usd`));
    expect(body.data).toMatchObject({ currency: 'USD', transaction_count: 1, credit_total: 7 });
    await context.app.inject({ method: 'DELETE', url: `/api/v1/transaction/${a.id}` });
    const gone = await analytics(`/api/v1/analytics/${userId}?currency=USD`);
    expect(gone.status).toBe(404);
  });

  it('rounds the average half-even to the minor unit, and breaks busiest-day ties to the earliest', async () => {
    const userId = uniqueUserId();
    await create({
      user_id: userId,
      transaction_date: '2024-03-02T10:00:00Z',
      transaction_amount: '0.01',
    });
    await create({
      user_id: userId,
      transaction_date: '2024-03-01T10:00:00Z',
      transaction_amount: '0.02',
    });
    await create({
      user_id: userId,
      transaction_date: '2024-03-03T10:00:00Z',
      transaction_amount: '0.02',
    });
    await create({
      user_id: userId,
      transaction_date: '2024-03-03T11:00:00Z',
      transaction_amount: '0.01',
    });
    // 0.06 / 4 = 0.015 → 0.02 (half to even); busiest: 03-03 (2)
    const { body } = await analytics(`/api/v1/analytics/${userId}`);
    expect(body.data.average_transaction_value).toBe(0.02);
    expect(body.data.highest_transactions_day).toBe('2024-03-03');
    const other = uniqueUserId();
    await create({
      user_id: other,
      transaction_date: '2024-03-02T10:00:00Z',
      transaction_amount: '0.05',
    });
    await create({
      user_id: other,
      transaction_date: '2024-03-01T10:00:00Z',
      transaction_amount: '0.05',
    });
    await create({
      user_id: other,
      transaction_date: '2024-03-03T10:00:00Z',
      transaction_amount: '0.05',
    });
    await create({
      user_id: other,
      transaction_date: '2024-03-03T10:00:00Z',
      transaction_amount: '0.06',
    });
    // 0.21 / 4 = 0.0525 → 0.05; tie 03-01/03-02 at one each loses to 03-03 at two
    const second = await analytics(`/api/v1/analytics/${other}`);
    expect(second.body.data.average_transaction_value).toBe(0.05);
    const tie = uniqueUserId();
    await create({ user_id: tie, transaction_date: '2024-05-02T10:00:00Z' });
    await create({ user_id: tie, transaction_date: '2024-05-01T10:00:00Z' });
    expect((await analytics(`/api/v1/analytics/${tie}`)).body.data.highest_transactions_day).toBe(
      '2024-05-01',
    );
  });

  it('answers 404 in the old wording and 422 for an unknown currency', async () => {
    const { status, body } = await analytics('/api/v1/analytics/nobody-at-all');
    expect(status).toBe(404);
    expect(body).toMatchObject({
      code: 'ANALYTICS_NOT_FOUND',
      message: 'Transaction analytics not found for user ID nobody-at-all',
    });
    expect((await analytics('/api/v1/analytics/x?currency=XYZ')).status).toBe(422);
  });
});

describe('GET /api/v1/analytics/range/{user_id}', () => {
  it('cuts inside a day: whole days from the rollup, edge hours from the rows', async () => {
    const userId = await fixtureUser();
    const url = (q: string) => `/api/v1/analytics/range/${userId}?${q}`;

    const afternoon = await analytics(
      url('start_date=2024-10-10T12:00:00Z&end_date=2024-10-11T09:00:00Z'),
    );
    expect(afternoon.body.data).toMatchObject({
      transaction_count: 2,
      credit_total: 20,
      debit_total: 30,
      highest_transactions_day: '2024-10-10',
      highest_transactions_day_count: 1,
      first_transaction_date: '2024-10-10T18:00:00.000Z',
      last_transaction_date: '2024-10-11T09:00:00.000Z',
      start_date: '2024-10-10T12:00:00.000Z',
      end_date: '2024-10-11T09:00:00.000Z',
    });

    const morning = await analytics(
      url('start_date=2024-10-10T09:00:00Z&end_date=2024-10-10T09:00:00Z'),
    );
    expect(morning.body.data).toMatchObject({
      transaction_count: 2,
      credit_total: 100,
      debit_total: 50,
      net_total: 50,
    });

    const lone = await analytics(url('start_date=2024-10-11'));
    expect(lone.body.data).toMatchObject({
      transaction_count: 1,
      credit_total: 20,
      end_date: null,
    });

    const upTo = await analytics(url('end_date=2024-10-10T23:59:59.999Z'));
    expect(upTo.body.data).toMatchObject({
      transaction_count: 3,
      highest_transactions_day_count: 3,
    });

    const whole = await analytics(url('start_date=2024-10-01&end_date=2024-10-31'));
    expect(whole.body.data).toMatchObject({
      transaction_count: 4,
      average_transaction_value: 50,
      net_total: 40,
    });
  });

  it('answers 404 for an empty period and 422 for reversed or malformed bounds', async () => {
    const userId = await fixtureUser();
    expect(
      (await analytics(`/api/v1/analytics/range/${userId}?start_date=2025-01-01`)).status,
    ).toBe(404);
    const reversed = await analytics(
      `/api/v1/analytics/range/${userId}?start_date=2024-10-11&end_date=2024-10-10`,
    );
    expect(reversed.status).toBe(422);
    expect(reversed.body.detail[0].loc).toEqual(['query', 'start_date']);
    expect((await analytics(`/api/v1/analytics/range/${userId}?end_date=tomorrow`)).status).toBe(
      422,
    );
  });
});
