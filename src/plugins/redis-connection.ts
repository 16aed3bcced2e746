import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { createRedisConnection, type RedisConnection } from '../platform/redis.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The process's one Redis connection (REDIS_URL: a server; REDIS_CLUSTER_NODES: a cluster),
     * shared by the cache, the rate limiter and the read replicas' write positions. Undefined
     * without Redis.
     */
    redisConnection: RedisConnection | undefined;
  }
}

/** The Redis connection the configuration names (a server or a cluster), or undefined. */
export function redisConnectionFrom(config: Config): RedisConnection | undefined {
  return config.redisUrl || config.redisClusterNodes
    ? createRedisConnection({
        url: config.redisUrl,
        clusterNodes: config.redisClusterNodes,
        timeoutMs: config.cacheTimeoutMs,
      })
    : undefined;
}

/**
 * Opens the shared Redis connection. Registered before everything that uses it, so it closes
 * after them (plugins close in reverse order).
 */
export const redisConnectionPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    const connection = redisConnectionFrom(config);
    app.decorate('redisConnection', connection);
    if (connection) app.addHook('onClose', async () => connection.close());
  },
  { name: 'redis-connection', fastify: '5.x' },
);
