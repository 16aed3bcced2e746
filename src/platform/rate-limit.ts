import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';

/**
 * Fixed-window request counting per caller. A window opens with a caller's first request and
 * lasts `windowMs`; within it `max` requests pass and the rest answer 429 until it closes.
 */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window closes (at least 1). */
  resetSeconds: number;
}

export interface RateLimitStore {
  readonly kind: 'redis' | 'memory';
  /** Counts one request of `key`; the count so far in its window and the window's time left. */
  hit(key: string, windowMs: number): Promise<{ count: number; ttlMs: number }>;
  close(): Promise<void>;
  /** Resolves once connected, or after `timeoutMs` regardless (counting falls back meanwhile). */
  ready?(timeoutMs: number): Promise<void>;
}

/** Callers one process keeps counts for at most (least recently seen go first). */
const MEMORY_KEYS_MAX = 100_000;

export function memoryRateLimitStore(): RateLimitStore {
  const windows = new LRUCache<string, { count: number; resetAt: number }>({
    max: MEMORY_KEYS_MAX,
  });
  return {
    kind: 'memory',
    async hit(key, windowMs) {
      const now = Date.now();
      let window = windows.get(key);
      if (!window || window.resetAt <= now) {
        window = { count: 0, resetAt: now + windowMs };
        windows.set(key, window, { ttl: windowMs });
      }
      window.count += 1;
      return { count: window.count, ttlMs: window.resetAt - now };
    },
    async close() {
      windows.clear();
    },
  };
}

// The expiry is set with the first count only, so the window does not slide with traffic.
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;

/** Counts in Redis, shared by every replica. Fails fast while Redis is unreachable. */
export function redisRateLimitStore(options: {
  url: string;
  prefix: string;
  timeoutMs: number;
}): RateLimitStore {
  const client = new Redis(options.url, {
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(options.timeoutMs, 1_000),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  // Failures are reported by the commands that fail; the event only needs a listener.
  client.on('error', () => undefined);
  return {
    kind: 'redis',
    async hit(key, windowMs) {
      const [count, ttlMs] = (await client.eval(
        HIT_SCRIPT,
        1,
        `${options.prefix}:rl:${key}`,
        String(windowMs),
      )) as [number, number];
      return { count, ttlMs };
    },
    async close() {
      client.disconnect();
    },
    async ready(timeoutMs) {
      if (client.status === 'ready') return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        client.once('ready', done);
        function done() {
          clearTimeout(timer);
          client.off('ready', done);
          resolve();
        }
      });
    },
  };
}

export interface RateLimiter {
  readonly windowSeconds: number;
  ready(timeoutMs: number): Promise<void>;
  /** Counts a request of `identity` against `max` (0: unlimited, always allowed). */
  check(identity: string, max: number): Promise<RateLimitDecision>;
  close(): Promise<void>;
}

/**
 * The limiter as requests use it. When the shared store fails (Redis down), counting falls back
 * to this process's memory: each replica then enforces the limit on its own, so a client can get
 * up to replicas × max through, but no client gets unlimited access and no request fails because
 * Redis did. The outage is logged once and counted.
 */
export function createRateLimiter(options: {
  store: RateLimitStore;
  windowSeconds: number;
  logger: Pick<FastifyBaseLogger, 'warn' | 'info'>;
  registry?: Registry;
}): RateLimiter {
  const { store, logger } = options;
  const windowMs = options.windowSeconds * 1000;
  const fallback = store.kind === 'memory' ? store : memoryRateLimitStore();
  let degraded = false;
  const limited = new Counter({
    name: 'fido_rate_limited_total',
    help: 'Requests refused with 429 by the rate limiter',
    registers: options.registry ? [options.registry] : [],
  });
  const storeErrors = new Counter({
    name: 'fido_rate_limit_store_errors_total',
    help: 'Rate limit counts that could not reach Redis and were kept in process memory',
    registers: options.registry ? [options.registry] : [],
  });

  async function hit(key: string) {
    if (store === fallback) return store.hit(key, windowMs);
    try {
      const result = await store.hit(key, windowMs);
      if (degraded) {
        degraded = false;
        logger.info({ rate_limit_store: store.kind }, 'rate limit store recovered');
      }
      return result;
    } catch (error) {
      storeErrors.inc();
      if (!degraded) {
        degraded = true;
        logger.warn(
          { err: error, rate_limit_store: store.kind },
          'rate limit store unavailable; counting in process memory',
        );
      }
      return fallback.hit(key, windowMs);
    }
  }

  return {
    windowSeconds: options.windowSeconds,
    ready: async (timeoutMs) => store.ready?.(timeoutMs),
    async check(identity, max) {
      if (max === 0) {
        return { allowed: true, limit: 0, remaining: 0, resetSeconds: options.windowSeconds };
      }
      // Hashed: keys in Redis reveal neither user ids nor addresses, and stay short.
      const key = createHash('sha256').update(identity).digest('base64url').slice(0, 22);
      const { count, ttlMs } = await hit(key);
      const allowed = count <= max;
      if (!allowed) limited.inc();
      return {
        allowed,
        limit: max,
        remaining: Math.max(0, max - count),
        resetSeconds: Math.max(1, Math.ceil(ttlMs / 1000)),
      };
    },
    async close() {
      await store.close();
      if (fallback !== store) await fallback.close();
    },
  };
}
