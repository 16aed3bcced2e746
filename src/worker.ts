import { buildApp } from './app.js';
import { ConfigError, loadConfig, readDotEnv } from './config.js';
import { eventHandlers } from './event-handlers.js';
import { closeOnSignals, failedToStart } from './platform/process.js';

/**
 * Process entry for background work (`npm run worker`): the event worker and the scheduler,
 * without serving HTTP. Run it beside API replicas started with WORKER=off. The same app is
 * built as for the API, so the worker has the very services, cache and handlers it does.
 */
async function main(): Promise<void> {
  readDotEnv();
  const config = loadConfig({ ...process.env, WORKER: 'inline' });
  if (!config.databaseUrl) {
    // PGlite's data directory belongs to one process: the API already runs the worker inline.
    throw new ConfigError([
      'DATABASE_URL is required for a separate worker process; with embedded PGlite the API ' +
        'runs the worker itself (WORKER=inline, the default)',
    ]);
  }
  const app = await buildApp(config, { eventHandlers });
  // Nothing here listens on a socket, and the worker's own timers do not hold the process open.
  setInterval(() => undefined, 60_000);
  closeOnSignals(app, config.shutdownTimeoutMs);
  app.log.info('worker running; SIGTERM or SIGINT stops it');
}

main().catch(failedToStart);
