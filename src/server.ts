import { buildApp } from './app.js';
import { ConfigError, loadConfig, readDotEnv } from './config.js';

/** Process entry for HTTP: configuration, listen, and a graceful stop on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  readDotEnv();
  const config = loadConfig();
  const app = await buildApp(config);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal, timeout_ms: config.shutdownTimeoutMs }, 'shutting down');
    // In-flight requests get until the bound to finish; then the process goes regardless.
    const force = setTimeout(() => {
      app.log.error({ timeout_ms: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
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
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  await app.listen({ port: config.port, host: config.host });
}

main().catch((error: unknown) => {
  // Logging may not exist yet (a bad configuration); stderr always does.
  const message =
    error instanceof ConfigError ? error.message : String((error as Error)?.stack ?? error);
  process.stderr.write(`fido-transactions-api failed to start: ${message}\n`);
  process.exit(1);
});
