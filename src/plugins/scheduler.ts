import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { scheduledJobs } from '../jobs/catalogue.js';
import { startScheduler, type Scheduler } from '../jobs/scheduler.js';

/**
 * The scheduler: runs the job catalogue on its cron patterns, once per tick across every process
 * sharing the database. Started once the app is ready (its first tick comes later, so start-up
 * never waits on it) and stopped before the database closes (preClose).
 */
export const schedulerPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    let scheduler: Scheduler | undefined;
    app.addHook('onReady', async () => {
      const db = app.database.db;
      const { metrics, cache, cipher, log: logger } = app;
      scheduler = startScheduler(
        db,
        scheduledJobs({ config, db, metrics, cache, cipher, logger }),
        app.log,
      );
    });
    app.addHook('preClose', async () => {
      await scheduler?.stop();
    });
  },
  { name: 'scheduler', fastify: '5.x', dependencies: ['database', 'metrics', 'redis', 'crypto'] },
);
