import { buildApp } from './app.js';
import { loadConfig, readDotEnv } from './config.js';
import { eventHandlers } from './event-handlers.js';
import { closeOnSignals, failedToStart } from './platform/process.js';

/** Process entry for HTTP: configuration, listen, and a graceful stop on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  readDotEnv();
  const config = loadConfig();
  const app = await buildApp(config, { eventHandlers });
  closeOnSignals(app, config.shutdownTimeoutMs);
  await app.listen({ port: config.port, host: config.host });
}

main().catch(failedToStart);
