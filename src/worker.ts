import { buildApp } from './app.js';
import { ConfigError, loadConfig, readDotEnv } from './config.js';
import { applyHeapGrowing } from './platform/heap.js';
import { eventHandlers } from './event-handlers.js';
import { closeOnSignals, failedToStart } from './platform/process.js';

/**
 * Process entry for background work (`npm run worker`): the event worker and the scheduler. Run
 * it beside API replicas started with WORKER=off. The same composition root builds it, so it has
 * the very services, cache and handlers the API does; over HTTP it serves only /healthz, /readyz
 * and /metrics, on WORKER_PORT.
 */
async function main(): Promise<void> {
  readDotEnv();
  // The worker role runs the event worker whatever WORKER says (it is the API's switch).
  const config = loadConfig();
  applyHeapGrowing(config.heapGrowingPercent);
  if (!config.databaseUrl) {
    // PGlite's data directory belongs to one process: the API already runs the worker inline.
    throw new ConfigError([
      'DATABASE_URL is required for a separate worker process; with embedded PGlite the API ' +
        'runs the worker itself (WORKER=inline, the default)',
    ]);
  }
  const app = await buildApp(config, { eventHandlers, role: 'worker' });
  closeOnSignals(app, config.shutdownTimeoutMs);
  await app.listen({ port: config.workerPort, host: config.host });
  app.log.info('worker running; SIGTERM or SIGINT stops it');
}

main().catch(failedToStart);
