import { describe, expect, it } from 'vitest';
import { bearer, createAs, createKey, REQUIRED_AUTH_ENV, userToken } from '../helpers/auth.js';
import { transactionBody, uniqueUserId } from '../helpers/factories.js';
import { useTestApp } from '../helpers/app.js';
import { eventually } from '../helpers/webhook-receiver.js';

interface FeedPage {
  data: { user_id: string; transaction_id: string }[];
}

describe('the event feed with user tokens', () => {
  const ctx = useTestApp({ env: REQUIRED_AUTH_ENV });

  it("shows a user token its own user's events only, and another user's as not found", async () => {
    const { key } = await createKey(ctx.database, ['transactions:write']);
    const [mine, theirs] = [uniqueUserId('mine'), uniqueUserId('theirs')];
    const own = await createAs(ctx.app, key, transactionBody({ user_id: mine }));
    await createAs(ctx.app, key, transactionBody({ user_id: theirs }));
    const token = await userToken(mine);

    const events = await eventually(async () => {
      const response = await ctx.app.inject({ url: '/api/v1/events', headers: bearer(token) });
      expect(response.statusCode).toBe(200);
      const page = response.json<FeedPage>();
      return page.data.length > 0 ? page.data : undefined;
    });
    expect(events.map((e) => e.transaction_id)).toEqual([own.id]);
    expect(events.every((e) => e.user_id === mine)).toBe(true);

    const foreign = await ctx.app.inject({
      url: `/api/v1/events?user_id=${theirs}`,
      headers: bearer(token),
    });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json<{ code: string }>().code).toBe('USER_NOT_FOUND');
    const webhooks = await ctx.app.inject({ url: '/api/v1/webhooks', headers: bearer(token) });
    expect(webhooks.statusCode).toBe(404);
  });
});
