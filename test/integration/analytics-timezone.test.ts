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

it('splits a range by local date where midnight happens twice', async () => {
  // 2023-11-05 in Havana: clocks go back from 01:00 to 00:00, so 00:00-00:59 happens twice;
  // 04:30Z is 00:30 of the first pass, already the 5th.
  const userId = uniqueUserId();
  const created = await context.app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    payload: transactionBody({ user_id: userId, transaction_date: '2023-11-05T04:30:00Z' }),
  });
  expect(created.statusCode).toBe(201);
  const range = (query: string) =>
    context.app.inject({ method: 'GET', url: `/api/v1/analytics/range/${userId}?${query}` });

  const fromDay = await range('start_date=2023-11-05');
  expect(fromDay.json().data).toMatchObject({
    transaction_count: 1,
    start_date: '2023-11-05T04:00:00.000Z',
    highest_transactions_day: '2023-11-05',
  });
  expect((await range('end_date=2023-11-05')).statusCode).toBe(404);
  expect((await range('start_date=2023-11-05T05:00:00Z')).statusCode).toBe(404);
  const within = await range('start_date=2023-11-05T04:15:00Z&end_date=2023-11-05T12:00:00Z');
  expect(within.json().data.transaction_count).toBe(1);
});
