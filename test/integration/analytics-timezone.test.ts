import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';

// Havana's clocks jump from 00:00 to 01:00 on 2024-03-10: that day has no midnight.
const context = useTestApp({ env: { ANALYTICS_TIMEZONE: 'America/Havana' } });

it('counts calendar days in ANALYTICS_TIMEZONE, date-only bounds included, across a DST gap', async () => {
  const userId = uniqueUserId();
  // 2024-03-09 23:30 in Havana, though already the 10th in UTC.
  const created = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody({ user_id: userId, transaction_date: '2024-03-10T04:30:00Z' }),
  });
  expect(created.statusCode).toBe(201);

  const allTime = await context.app.inject({ method: 'GET', url: `/api/v1/analytics/${userId}` });
  expect(allTime.json().data.highest_transactions_day).toBe('2024-03-09');

  const fromTenth = await context.app.inject({
    method: 'GET',
    url: `/api/v1/analytics/range/${userId}?start_date=2024-03-10`,
  });
  expect(fromTenth.statusCode).toBe(404);

  const untilTenth = await context.app.inject({
    method: 'GET',
    url: `/api/v1/analytics/range/${userId}?start_date=2024-03-09&end_date=2024-03-10`,
  });
  expect(untilTenth.json().data).toMatchObject({
    transaction_count: 1,
    start_date: '2024-03-09T05:00:00.000Z',
    end_date: '2024-03-10T05:00:00.000Z',
  });
});
