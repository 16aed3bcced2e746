import { Cron } from 'croner';
import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import { queryRows, type Db } from '../db/client.js';

/** A job the scheduler starts on a cron pattern. Handlers must be safe to run again. */
export interface ScheduledJob {
  name: string;
  /** Cron pattern; a sixth leading field gives seconds. */
  pattern: string;
  run(): Promise<void>;
}

/** First key of the scheduler's advisory lock; the second is the job name's hash. */
const SCHEDULER_LOCK_CLASS = 0x46_49_44_53; // "FIDS"
/** How long tick records are kept to recognise a tick another instance already took. */
const TICK_RETENTION = sql`interval '1 day'`;

export interface Scheduler {
  stop(): Promise<void>;
}

/**
 * Runs each job on its pattern, once per tick across every instance sharing the database: the
 * instance that takes the job's advisory lock and records the tick first runs it; the others see
 * the record and skip. Start-up and requests never wait on it.
 */
export function startScheduler(
  db: Db,
  jobs: readonly ScheduledJob[],
  logger: Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>,
): Scheduler {
  const running = new Set<Promise<void>>();
  const crons = jobs.map(
    (job) =>
      new Cron(job.pattern, { protect: true }, async (self: Cron) => {
        const scheduledAt = self.currentRun() ?? new Date();
        const work = tick(db, job, scheduledAt, logger);
        running.add(work);
        await work.finally(() => running.delete(work));
      }),
  );
  logger.info(
    { jobs: jobs.map((j) => ({ name: j.name, pattern: j.pattern })) },
    'scheduler started',
  );
  return {
    async stop() {
      for (const cron of crons) cron.stop();
      await Promise.allSettled(running);
    },
  };
}

async function tick(
  db: Db,
  job: ScheduledJob,
  scheduledAt: Date,
  logger: Pick<FastifyBaseLogger, 'warn' | 'error'>,
): Promise<void> {
  // Ticks are whole seconds: every instance computes the same instant for the same tick.
  const tickAt = new Date(Math.floor(scheduledAt.getTime() / 1000) * 1000);
  let claimed = false;
  try {
    claimed = await db.transaction(async (dbTx) => {
      const [lock] = await queryRows<{ locked: boolean }>(
        dbTx,
        sql`select pg_try_advisory_xact_lock(${SCHEDULER_LOCK_CLASS}, hashtext(${job.name})) as locked`,
      );
      if (!lock?.locked) return false;
      const inserted = await queryRows<{ job: string }>(
        dbTx,
        sql`insert into scheduler_runs (job, scheduled_at) values (${job.name}, ${tickAt.toISOString()}::timestamptz)
          on conflict do nothing returning job`,
      );
      await dbTx.execute(
        sql`delete from scheduler_runs where job = ${job.name} and scheduled_at < now() - ${TICK_RETENTION}`,
      );
      return inserted.length > 0;
    });
  } catch (error) {
    logger.warn({ err: error, job: job.name }, 'scheduler could not claim a tick');
    return;
  }
  if (!claimed) return;
  try {
    await job.run();
  } catch (error) {
    logger.error({ err: error, job: job.name }, 'scheduled job failed');
  }
}
