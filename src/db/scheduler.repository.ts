import { and, eq, lt, sql } from 'drizzle-orm';
import { queryRows, type Db } from './client.js';
import { schedulerRuns } from './schema/index.js';

/** First key of the scheduler's advisory lock; the second is the job name's hash. */
const SCHEDULER_LOCK_CLASS = 0x46_49_44_53; // "FIDS"
/** How long tick records are kept to recognise a tick another instance already took. */
const TICK_RETENTION = sql`interval '1 day'`;

/**
 * Claims one tick of `job` for this instance: true when it took the job's advisory lock and
 * recorded the tick first; false when another instance holds the lock or already recorded it.
 * Records older than TICK_RETENTION are dropped on the way.
 */
export async function claimSchedulerTick(db: Db, job: string, tickAt: Date): Promise<boolean> {
  return db.transaction(async (dbTx) => {
    const [lock] = await queryRows<{ locked: boolean }>(
      dbTx,
      sql`select pg_try_advisory_xact_lock(${SCHEDULER_LOCK_CLASS}, hashtext(${job})) as locked`,
    );
    if (!lock?.locked) return false;
    const inserted = await dbTx
      .insert(schedulerRuns)
      .values({ job, scheduledAt: tickAt })
      .onConflictDoNothing()
      .returning({ job: schedulerRuns.job });
    await dbTx
      .delete(schedulerRuns)
      .where(
        and(
          eq(schedulerRuns.job, job),
          lt(schedulerRuns.scheduledAt, sql`now() - ${TICK_RETENTION}`),
        ),
      );
    return inserted.length > 0;
  });
}
