import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';
import { outageLog } from './outage.js';
import { createRedisConnection, type RedisConnection } from './redis.js';

/**
 * Fixed-window request counting per caller. A window opens with a caller's first request and
 * lasts `windowMs`; within it `max` requests pass and the rest answer 429 until it closes.
 *
 * With a shared store (Redis), a process does not count every request there: it reserves a block
 * of the caller's window at a time (`reservationBlock(max)` counts, one round trip) and hands the
 * counts out locally. See `createRateLimiter`.
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
  /**
   * Counts `amount` (default 1) requests of `key` at once; the count so far in its window (the
   * last of the `amount` counts) and the window's time left.
   */
  hit(key: string, windowMs: number, amount?: number): Promise<{ count: number; ttlMs: number }>;
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
    async hit(key, windowMs, amount = 1) {
      const now = Date.now();
      let window = windows.get(key);
      if (!window || window.resetAt <= now) {
        window = { count: 0, resetAt: now + windowMs };
        windows.set(key, window, { ttl: windowMs });
      }
      window.count += amount;
      return { count: window.count, ttlMs: window.resetAt - now };
    },
    async close() {
      windows.clear();
    },
  };
}

// Adds ARGV[2] counts. The expiry is set only on a key that has none (one just created), so the
// window does not slide with traffic.
const HIT_SCRIPT = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;

/** `HIT_SCRIPT` as a command of the client (`defineCommand`): sent as EVALSHA. */
interface HitCommand {
  fidoRateLimitHit(key: string, windowMs: string, amount: string): Promise<[number, number]>;
}

/**
 * Counts in Redis (one server or a cluster: one key per caller, so any slot), shared by every
 * replica. Fails fast while Redis is unreachable. `connection` is the process's shared one (closed
 * by its owner); with `url` the store opens one of its own and closes it.
 */
export function redisRateLimitStore(
  options: { prefix: string } & (
    { connection: RedisConnection } | { url: string; timeoutMs: number }
  ),
): RateLimitStore {
  const owned = 'url' in options;
  const connection = owned
    ? createRedisConnection({ url: options.url, timeoutMs: options.timeoutMs })
    : options.connection;
  // The script's text goes once per connection (EVAL), then only its SHA1 (EVALSHA); a server
  // that lost its script cache (a restart) gets the text again.
  connection.client.defineCommand('fidoRateLimitHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
  const commands = connection.client as unknown as HitCommand;
  return {
    kind: 'redis',
    async hit(key, windowMs, amount = 1) {
      const [count, ttlMs] = await commands.fidoRateLimitHit(
        `${options.prefix}:rl:${key}`,
        String(windowMs),
        String(amount),
      );
      return { count, ttlMs };
    },
    async close() {
      if (owned) await connection.close();
    },
    ready: (timeoutMs) => connection.ready(timeoutMs),
  };
}

export interface RateLimiter {
  readonly windowSeconds: number;
  ready(timeoutMs: number): Promise<void>;
  /** Counts a request of `identity` against `max` (0: unlimited, always allowed). */
  check(identity: string, max: number): Promise<RateLimitDecision>;
  close(): Promise<void>;
}

/** The most counts a process reserves from the shared store at once for one caller. */
const BLOCK_MAX = 1_000;

/**
 * How many counts of a caller's window a process reserves from the shared store per round trip:
 * 1% of `max`, at least 1 and at most 1,000. With one process counting is exact whatever the
 * block; with N, at most (N − 1) × block of a window's `max` can be left unspent in the other
 * processes (the caller is refused that much early, never let through beyond `max`). A process
 * that stops mid-window takes its unspent counts with it, the same way.
 */
export function reservationBlock(max: number): number {
  return Math.min(BLOCK_MAX, Math.max(1, Math.floor(max / 100)));
}

/** Counts of one caller's window reserved by this process and not yet handed out. */
interface Block {
  /** The next count to hand out, and the last one reserved. */
  next: number;
  last: number;
  /** When the window they belong to ends, on this clock (never after the store's expiry). */
  endsAt: number;
}

/** A reservation in flight for one caller, and how many requests are waiting for it. */
interface Reservation {
  settled: Promise<void>;
  waiting: number;
  /** The store failed it: its waiters count in memory rather than each trying the store in turn. */
  failed: boolean;
}

/**
 * The limiter as requests use it.
 *
 * With a shared store (Redis), counts are reserved in blocks (`reservationBlock(max)`): one
 * round trip adds the block to the caller's count in the store and returns the new count and
 * the window's time left; the process then hands those counts out to its requests, one each,
 * and asks for another block only when it has spent this one. A request is allowed when its
 * count is at most `max`, so however many replicas share the store, no more than `max` requests
 * of a window pass in all. Once a process has handed out its block up to `max` or past it, it
 * refuses the caller locally until the window ends (no round trip for refused requests). A block belongs to the
 * window it was reserved in: it is dropped when that window ends (the end is taken from the
 * store's TTL, measured from when the reservation was sent, so a process never outlives the
 * store's window). Reservations of one caller are serialised within a process: requests that
 * arrive while one is in flight wait for it, and the next reservation is sized to cover all of
 * them, so waiting requests never cost one round trip each.
 *
 * When the shared store fails (Redis down), counting falls back to this process's memory: each
 * replica then enforces the limit on its own, so a client can get up to replicas × max through,
 * but no client gets unlimited access and no request fails because Redis did. The outage is
 * logged once and counted. The memory store counts every request itself (it is local already).
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
  const blocks = new LRUCache<string, Block>({ max: MEMORY_KEYS_MAX });
  const keys = new LRUCache<string, string>({ max: MEMORY_KEYS_MAX });
  const reservations = new Map<string, Reservation>();
  const outage = outageLog(
    logger,
    { rate_limit_store: store.kind },
    {
      down: 'rate limit store unavailable; counting in process memory',
      up: 'rate limit store recovered',
    },
  );
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

  /** Reserves `amount` counts of `key` in the store; this request takes the first of them. */
  async function reserve(key: string, amount: number): Promise<{ count: number; ttlMs: number }> {
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const reservation: Reservation = { settled, waiting: 0, failed: false };
    reservations.set(key, reservation);
    const sentAt = Date.now();
    try {
      const { count, ttlMs } = await store.hit(key, windowMs, amount);
      outage.succeeded();
      const first = count - amount + 1;
      blocks.set(key, { next: first + 1, last: count, endsAt: sentAt + ttlMs });
      return { count: first, ttlMs: sentAt + ttlMs - Date.now() };
    } catch (error) {
      reservation.failed = true;
      storeErrors.inc();
      outage.failed(error);
      return fallback.hit(key, windowMs);
    } finally {
      // Waiters resume after the block is in place (or, on failure, count in memory).
      reservations.delete(key);
      settle();
    }
  }

  /** This request's count in `key`'s window, and the window's time left. */
  async function hit(key: string, max: number): Promise<{ count: number; ttlMs: number }> {
    if (store === fallback) return store.hit(key, windowMs);
    // Requests still waiting on the reservation this one waited for: they need counts too.
    let alsoWaiting = 0;
    for (;;) {
      const now = Date.now();
      const block = blocks.get(key);
      if (block && block.endsAt > now) {
        if (block.next <= block.last) return { count: block.next++, ttlMs: block.endsAt - now };
        // Spent up to max or past it: every later count of this window is beyond max.
        if (block.last >= max) return { count: block.last + 1, ttlMs: block.endsAt - now };
      }
      const pending = reservations.get(key);
      if (!pending) return reserve(key, Math.max(reservationBlock(max), 1 + alsoWaiting));
      pending.waiting += 1;
      await pending.settled;
      pending.waiting -= 1;
      // A store that just failed (or timed out) would most likely fail each waiter again, one
      // after another: they are answered from memory, as the request that tried was.
      if (pending.failed) return fallback.hit(key, windowMs);
      alsoWaiting = pending.waiting;
    }
  }

  return {
    windowSeconds: options.windowSeconds,
    ready: async (timeoutMs) => store.ready?.(timeoutMs),
    async check(identity, max) {
      if (max === 0) {
        return { allowed: true, limit: 0, remaining: 0, resetSeconds: options.windowSeconds };
      }
      // Hashed: keys in Redis reveal neither user ids nor addresses, and stay short. Remembered,
      // as a caller sends many requests: a hash per request cost ~1% of a cached read's CPU.
      let key = keys.get(identity);
      if (key === undefined) {
        key = createHash('sha256').update(identity).digest('base64url').slice(0, 22);
        keys.set(identity, key);
      }
      const { count, ttlMs } = await hit(key, max);
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
      blocks.clear();
      keys.clear();
    },
  };
}
