import cluster, { type Worker } from 'node:cluster';
import { buildApp } from './app.js';
import { loadConfig, readDotEnv, type Config } from './config.js';
import { eventHandlers } from './event-handlers.js';
import { serveClusterMetrics } from './platform/cluster-metrics.js';
import { applyHeapGrowing } from './platform/heap.js';
import { createLogger } from './platform/logging.js';
import { closeOnSignals, failedToStart, START_FAILED } from './platform/process.js';

/** A process that dies before listening or this soon after failed to start: retried with backoff. */
const CRASH_LOOP_MS = 10_000;
/** The first retry's delay, doubled for each next one, up to the last. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8_000;

/** Process entry for HTTP: configuration, listen, and a graceful stop on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  readDotEnv();
  const config = loadConfig();
  applyHeapGrowing(config.heapGrowingPercent);
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
 * runs in the first process only; the others serve requests. A process that dies right after
 * starting (before it listens, or within CRASH_LOOP_MS of it) is started again after a delay that doubles each time; after
 * WEB_START_RETRIES such failures in a row the supervisor stops the others and exits 1. The reason
 * (what the process sent before exiting, or its exit code) is logged once, and again only if it
 * changes. It also answers the processes' /metrics scrapes with the sum over all of them.
 */
function runPrimary(config: Config): void {
  const log = createLogger(config.logLevel);
  const started = new Map<Worker, { index: number; listeningAt?: number }>();
  const failuresInARow = new Map<number, number>();
  const reasons = new Map<Worker, string>();
  const retries = new Set<NodeJS.Timeout>();
  let lastReason: string | undefined;
  let stopping = false;
  let exitCodeOnStop = 0;
  serveClusterMetrics();
  const fork = (index: number) => {
    const background = index === 0 ? {} : { WORKER: 'off', SCHEDULER: 'off' };
    const worker = cluster.fork(background);
    started.set(worker, { index });
  };
  cluster.on('listening', (worker) => {
    const info = started.get(worker);
    if (info) info.listeningAt ??= Date.now();
  });
  const stopAll = (signal: NodeJS.Signals, exitCode: number, graceMs: number) => {
    stopping = true;
    for (const timer of retries) clearTimeout(timer);
    retries.clear();
    for (const worker of started.keys()) worker.process.kill(signal);
    if (started.size === 0) process.exit(exitCode);
    // Each process bounds its own shutdown; this only guards against one that hangs.
    setTimeout(() => process.exit(1), graceMs).unref();
  };
  cluster.on('message', (worker, message: { type?: unknown; reason?: unknown } | undefined) => {
    if (message?.type === START_FAILED) reasons.set(worker, String(message.reason));
  });
  cluster.on('exit', (worker, code, signal) => {
    const info = started.get(worker);
    started.delete(worker);
    const reason =
      reasons.get(worker) ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
    reasons.delete(worker);
    if (stopping) {
      if (started.size === 0) process.exit(exitCodeOnStop);
      return;
    }
    const index = info?.index ?? 0;
    const pid = worker.process.pid;
    if (info?.listeningAt !== undefined && Date.now() - info.listeningAt >= CRASH_LOOP_MS) {
      failuresInARow.set(index, 0);
      log.error({ pid, code, signal, reason }, 'HTTP process exited unexpectedly; replacing it');
      fork(index);
      return;
    }
    const failures = (failuresInARow.get(index) ?? 0) + 1;
    failuresInARow.set(index, failures);
    if (failures > config.webStartRetries) {
      log.fatal(
        { pid, code, signal, retries: config.webStartRetries },
        'HTTP process keeps failing right after starting; giving up and stopping the others',
      );
      exitCodeOnStop = 1;
      stopAll('SIGTERM', 1, config.shutdownTimeoutMs + 1_000);
      return;
    }
    const delayMs = Math.min(RETRY_FIRST_MS * 2 ** (failures - 1), RETRY_MAX_MS);
    const fields = {
      pid,
      code,
      signal,
      retry: failures,
      of: config.webStartRetries,
      delay_ms: delayMs,
    };
    // Told apart by their first line (the message), not by a stack trace's frames.
    const gist = reason.split('\n')[0];
    if (gist !== lastReason) {
      lastReason = gist;
      log.error({ ...fields, reason }, 'HTTP process failed right after starting; retrying');
    } else {
      log.warn(fields, 'HTTP process failed right after starting again (same reason); retrying');
    }
    const timer = setTimeout(() => {
      retries.delete(timer);
      if (!stopping) fork(index);
    }, delayMs);
    retries.add(timer);
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    log.info({ signal, processes: started.size }, 'shutting down');
    stopAll(signal, 0, config.shutdownTimeoutMs + 2_000);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  log.info({ processes: config.webConcurrency }, 'starting HTTP processes');
  for (let index = 0; index < config.webConcurrency; index += 1) fork(index);
}

main().catch(failedToStart);
