import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import {
  memoryPositionStore,
  openReadReplicas,
  primaryOnly,
  redisPositionStore,
  type PositionStore,
  type ReadRouter,
} from '../platform/read-replicas.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Where reads that may use a replica go: the primary alone without READ_DATABASE_URL. */
    reads: ReadRouter;
  }
}

export interface ReadReplicasPluginOptions {
  config: Config;
  /**
   * Where users' write positions live when READ_DATABASE_URL is set; otherwise Redis (REDIS_URL)
   * or process memory. Tests share one between two apps.
   */
  positionStore?: PositionStore | undefined;
}

/**
 * The read router (`app.reads`) over the primary and the read replicas (READ_DATABASE_URL).
 * Users' write positions live in Redis when there is one (every process sees them), else here.
 * Closed after Redis and before the primary.
 */
export const readReplicasPlugin = fp<ReadReplicasPluginOptions>(
  async (app, { config, positionStore }) => {
    const primary = app.database.db;
    if (config.readDatabaseUrls.length === 0) {
      app.decorate('reads', primaryOnly(primary));
      return;
    }
    let positions = positionStore;
    // On the process's shared Redis connection (a server or a cluster: one key per command).
    const redis = app.redisConnection;
    if (!positions && redis) positions = redisPositionStore(redis.client, config.cachePrefix);
    const router = await openReadReplicas({
      primary,
      urls: config.readDatabaseUrls,
      positions: positions ?? memoryPositionStore(config.cacheMaxEntries),
      maxLagMs: config.readReplicaMaxLagMs,
      poolSize: config.dbPoolSize,
      statementTimeoutMs: config.dbStatementTimeoutMs,
      connectTimeoutMs: config.dbConnectTimeoutMs,
      logger: app.log,
      registry: app.metrics.registry,
    });
    app.addHook('onClose', async () => router.close());
    app.decorate('reads', router);
  },
  {
    name: 'read-replicas',
    fastify: '5.x',
    dependencies: ['database', 'metrics', 'redis-connection'],
  },
);
