import cluster from 'node:cluster';
import type { FastifyInstance } from 'fastify';
import { StartupError } from './errors.js';

/** Closes `app` on SIGTERM or SIGINT, then exits; work in flight gets until `timeoutMs`. */
export function closeOnSignals(app: FastifyInstance, timeoutMs: number): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal, timeout_ms: timeoutMs }, 'shutting down');
    const force = setTimeout(() => {
      app.log.error({ timeout_ms: timeoutMs }, 'shutdown timed out; exiting');
      process.exit(1);
    }, timeoutMs);
    force.unref();
    app.close().then(
      () => {
        app.log.info('shut down cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        app.log.error({ err: error }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  // Not once: a signal that comes again while stopping (a terminal's Ctrl-C reaches an HTTP
  // process and its supervisor, which passes it on) is ignored, not left to kill the process.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * What an operator is told about `error`: one line for a set-up problem (a bad setting, a data
 * directory in use, no way to authenticate), the stack for anything else (a bug).
 */
export function describeFailure(error: unknown): string {
  if (error instanceof StartupError) return error.toString().replace(/^\w*Error: /, '');
  return String((error as Error)?.stack ?? error);
}

/** What an HTTP process under the supervisor sends it when it cannot start (server.ts logs it). */
export const START_FAILED = 'fido:start-failed';

/** The last word of an entry point that could not start. */
export function failedToStart(error: unknown): void {
  // Logging may not exist yet (a bad configuration); stderr always does.
  const message = describeFailure(error);
  if (cluster.isWorker && process.send) {
    // Under the supervisor, which retries and logs the reason once rather than once per attempt.
    process.send({ type: START_FAILED, reason: message }, () => process.exit(1));
    setTimeout(() => process.exit(1), 2_000);
    return;
  }
  process.stderr.write(`fido-transactions-api failed to start: ${message}\n`);
  process.exit(1);
}
