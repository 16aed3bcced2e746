import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import {
  createJetStreamMetrics,
  jetStreamLag,
  startJetStreamRelay,
  type JetStreamRelay,
  type JetStreamRelayOptions,
} from '../modules/events/index.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * With NATS_URL: the relay's lag (events committed but not yet in the stream), and, in a
     * process that runs the relay, the relay itself (nudged after a write commits).
     */
    jetstream?: {
      lag(): Promise<number>;
      /** Whether this process's relay is connected; undefined where no relay runs. */
      connected(): boolean | undefined;
      nudge(): void;
    };
  }
}

export interface JetStreamPluginOptions {
  config: Config & { natsUrl: string };
  /** Run the relay here (where the event worker runs: inline, or `npm run worker`). */
  relay: boolean;
  /** Tests: a crash point between publish and save, a smaller batch. */
  overrides?: Pick<JetStreamRelayOptions, 'afterPublish' | 'batchSize'> | undefined;
}

/**
 * The relay from the feed to NATS JetStream (docs/jetstream.md). Every process with NATS_URL
 * reports the lag (`/readyz`, `/metrics`); the relay runs where the event worker does. Started
 * once the app is ready, stopped before the database closes (preClose).
 */
export const jetStreamPlugin = fp<JetStreamPluginOptions>(
  async (app, { config, relay: runRelay, overrides }) => {
    const db = app.database.db;
    const lag = () => jetStreamLag(db);
    const metrics = createJetStreamMetrics(app.metrics.registry, lag);
    let relay: JetStreamRelay | undefined;
    app.decorate('jetstream', {
      lag,
      connected: () => relay?.connected(),
      nudge: () => relay?.nudge(),
    });
    if (!runRelay) return;
    app.addHook('onReady', async () => {
      relay = startJetStreamRelay({
        db,
        exclusive: app.database.kind === 'postgres',
        servers: config.natsUrl,
        stream: config.natsStream,
        subjectPrefix: config.natsSubjectPrefix,
        pollMs: config.workerPollMs,
        logger: app.log,
        metrics,
        ...overrides,
      });
    });
    app.addHook('preClose', async () => {
      await relay?.stop();
    });
  },
  { name: 'jetstream', fastify: '5.x', dependencies: ['database', 'metrics'] },
);
