import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { describe, expect, it } from 'vitest';
import { appendEvent } from '../../../src/modules/events/events.repository.js';
import { postTransaction, TEST_DATABASE_URL, useTestApp } from '../../helpers/app.js';
import { uniqueUserId } from '../../helpers/factories.js';

interface FeedPage {
  data: { user_id: string }[];
}

/*
 * The feed's barrier on a real server: a transaction that is still open holds back the events
 * committed after it began (they would otherwise be served ahead of its own event, which could
 * then land behind a reader's cursor), and an open transaction in another database does not.
 */
describe('event feed barrier', () => {
  const ctx = useTestApp();

  async function usersInFeed(): Promise<string[]> {
    const page = (await ctx.app.inject('/api/v1/events?limit=1000')).json<FeedPage>();
    return page.data.map((e) => e.user_id);
  }

  it('holds back later commits until an earlier open transaction ends, then serves both in order', async () => {
    const early = uniqueUserId('early');
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let written!: () => void;
    const eventWritten = new Promise<void>((resolve) => (written = resolve));
    const open = ctx.database.handle.db.transaction(async (dbTx) => {
      await appendEvent(dbTx, {
        type: 'transaction.created',
        userId: early,
        transactionId: uuidv7(),
        payload: { transaction: {} },
      });
      written();
      await held;
    });
    await eventWritten;
    const late = await postTransaction(ctx.app);

    expect(await usersInFeed()).not.toContain(late.user_id);
    release();
    await open;
    const users = await usersInFeed();
    expect(users.indexOf(early)).toBeGreaterThanOrEqual(0);
    expect(users.indexOf(early)).toBeLessThan(users.indexOf(late.user_id));
  });

  it('is not held back by an open transaction in another database on the server', async () => {
    const other = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await other.connect();
    try {
      await other.query('begin');
      await other.query('select pg_current_xact_id()');
      const created = await postTransaction(ctx.app);
      expect(await usersInFeed()).toContain(created.user_id);
    } finally {
      await other.query('rollback');
      await other.end();
    }
  });
});
