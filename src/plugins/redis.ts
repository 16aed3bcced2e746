import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import {
  createCache,
  memoryStore,
  redisStore,
  type Cache,
  type CacheStore,
} from '../platform/cache.js';
import {
  createRateLimiter,
  memoryRateLimitStore,
  redisRateLimitStore,
  type RateLimiter,
  type RateLimitStore,
} from '../platform/rate-limit.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The read cache (platform singleton), for background work that must invalidate it. */
    cache: Cache;
    /** Request counts per caller and per address, shared by every process on one Redis. */
    rateLimiter: RateLimiter;
  }
}

/** How long start-up waits for Redis to connect before serving without it. */
const REDIS_STARTUP_WAIT_MS = 2_000;

export interface RedisPluginOptions {
  config: Config;
  /** Where cached reads live; otherwise Redis (the shared connection) or the in-process store. */
  cacheStore?: CacheStore | undefined;
  /** Where rate-limit counts live; otherwise Redis (the shared connection) or process memory. */
  rateLimitStore?: RateLimitStore | undefined;
  /** Whether this process serves the API (the worker role counts no requests). */
  serving: boolean;
}

/**
 * Everything that lives in Redis (REDIS_URL or REDIS_CLUSTER_NODES), or in process memory without
 * it: the read cache (`app.cache`) and the rate limiter (`app.rateLimiter`), both on the process's
 * one connection (`app.redisConnection`), which closes after them, once the requests in flight
 * have drained.
 */
export const redisPlugin = fp<RedisPluginOptions>(
  async (app, { config, serving, ...given }) => {
    const connection = app.redisConnection;
    const redis = connection ? { connection, prefix: config.cachePrefix } : undefined;
    const cacheStore =
      given.cacheStore ?? (redis ? redisStore(redis) : memoryStore(config.cacheMaxEntries));
    const cache = createCache(cacheStore, {
      ttlSeconds: config.cacheExpirationSeconds,
      logger: app.log,
      registry: app.metrics.registry,
      beforeInvalidate: (user) => app.reads.written(user),
    });
    app.addHook('onClose', async () => cache.close());
    const rateLimiter = createRateLimiter({
      store:
        given.rateLimitStore ??
        (serving && redis ? redisRateLimitStore(redis) : memoryRateLimitStore()),
      windowSeconds: config.rateLimitWindowSeconds,
      logger: app.log,
      registry: app.metrics.registry,
    });
    app.addHook('onClose', async () => rateLimiter.close());
    app.decorate('cache', cache);
    app.decorate('rateLimiter', rateLimiter);
    // A first request should not find Redis still connecting and count that as an outage; a
    // Redis that is really down does not hold start-up back longer than this.
    await cacheStore.ready?.(REDIS_STARTUP_WAIT_MS);
    await rateLimiter.ready(REDIS_STARTUP_WAIT_MS);
  },
  { name: 'redis', fastify: '5.x', dependencies: ['metrics', 'read-replicas', 'redis-connection'] },
);
