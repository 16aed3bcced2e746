import cluster, { type Worker } from 'node:cluster';
import { buildApp } from './app.js';
import { loadConfig, readDotEnv, type Config } from './config.js';
import { eventHandlers } from './event-handlers.js';
import { createLogger } from './platform/logging.js';
import { closeOnSignals, failedToStart } from './platform/process.js';

/** A process that dies this soon after it started is failing, not crashing: stop, don't loop. */
const CRASH_LOOP_MS = 10_000;

/** Process entry for HTTP: configuration, listen, and a graceful stop on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  readDotEnv();
  const config = loadConfig();
  if (config.webConcurrency > 1 && cluster.isPrimary) {
    runPrimary(config);
    return;
  }
  if (cluster.isPrimary) {
    // The first start of the embedded database creates and migrates it, which takes seconds:
    // say so, rather than leave a new user looking at a silent terminal.
    createLogger(config.logLevel).info(
      { database: config.databaseUrl ? 'postgresql' : `embedded (${config.dataDir})` },
      'starting: opening the database and applying migrations',
    );
  }
  const app = await buildApp(config, { eventHandlers });
  closeOnSignals(app, config.shutdownTimeoutMs);
  await app.listen({ port: config.port, host: config.host });
}

/**
 * WEB_CONCURRENCY > 1: this process only supervises. It forks that many HTTP processes sharing
 * one port (Node cluster), replaces one that crashes, and on SIGTERM or SIGINT passes the signal
 * on and exits once they have all stopped. Background work (the event worker and the scheduler)
 * runs in the first process only; the others serve requests.
 */
function runPrimary(config: Config): void {
  const log = createLogger(config.logLevel);
  const started = new Map<Worker, { index: number; at: number }>();
  let stopping = false;
  const fork = (index: number) => {
    const background = index === 0 ? {} : { WORKER: 'off', SCHEDULER: 'off' };
    const worker = cluster.fork(background);
    started.set(worker, { index, at: Date.now() });
  };
  cluster.on('exit', (worker, code, signal) => {
    const info = started.get(worker);
    started.delete(worker);
    if (stopping) {
      if (started.size === 0) process.exit(0);
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, 'HTTP process exited unexpectedly');
    if (!info || Date.now() - info.at < CRASH_LOOP_MS) {
      log.fatal({}, 'HTTP process failed right after starting; stopping the others');
      stopping = true;
      for (const other of started.keys()) other.process.kill('SIGTERM');
      if (started.size === 0) process.exit(1);
      setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 1_000).unref();
      return;
    }
    fork(info.index);
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, processes: started.size }, 'shutting down');
    for (const worker of started.keys()) worker.process.kill(signal);
    // Each process bounds its own shutdown; this only guards against one that hangs.
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 2_000).unref();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  log.info({ processes: config.webConcurrency }, 'starting HTTP processes');
  for (let index = 0; index < config.webConcurrency; index += 1) fork(index);
}

main().catch(failedToStart);
