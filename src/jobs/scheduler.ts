import { Cron } from 'croner';
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/client.js';
import { claimSchedulerTick } from '../db/scheduler.repository.js';

/** A job the scheduler starts on a cron pattern. Handlers must be safe to run again. */
export interface ScheduledJob {
  name: string;
  /** Cron pattern; a sixth leading field gives seconds. */
  pattern: string;
  run(): Promise<void>;
}

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
    claimed = await claimSchedulerTick(db, job.name, tickAt);
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
