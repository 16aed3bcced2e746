import { createHash, randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { Counter, Histogram, type Registry } from 'prom-client';
import { outageLog } from './outage.js';

/**
 * Where cached entries live. Every entry of a user is stored under that user's current generation
 * (and, in Redis, the cache epoch), read together in one round trip; a committed write bumps the
 * generation, so no reader ever finds an entry computed before that write.
 */
export interface CacheStore {
  readonly kind: 'redis' | 'memory';
  /**
   * The user's current generation and the entry stored under it, in one round trip. A user with
   * no generation is given a fresh one, kept for twice `ttlSeconds`.
   */
  read(
    user: string,
    entry: string,
    ttlSeconds?: number,
  ): Promise<{ generation: string; value: string | undefined }>;
  write(
    user: string,
    generation: string,
    entry: string,
    value: string,
    ttlSeconds: number,
  ): Promise<void>;
  /** Makes every entry of the user unreachable. */
  bump(user: string, ttlSeconds: number): Promise<void>;
  /** Makes every entry of every user unreachable (after an outage hid some bumps). */
  bumpEpoch(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Called when the connection is re-established after being lost (Redis only). */
  onReconnect?(listener: () => void): void;
  /** Resolves once connected, or after `timeoutMs` regardless (the cache fails open). */
  ready?(timeoutMs: number): Promise<void>;
}

// A generation must never come back: a late writer holding an old one would otherwise be read.
// In Redis they are random tokens, not counters, so a Redis that restarts empty (or evicts a
// generation key) cannot hand out a value it handed out before; a user's key also outlives every
// entry under it. In-process, a counter that only grows does the same.

/** In-process store: bounded LRU for entries, a second one for generations. */
export function memoryStore(maxEntries: number): CacheStore {
  const entries = new LRUCache<string, string>({ max: maxEntries, ttlAutopurge: false });
  const generations = new LRUCache<string, string>({ max: maxEntries, ttlAutopurge: false });
  let counter = 0;
  return {
    kind: 'memory',
    async read(user, entry, ttlSeconds = 0) {
      let generation = generations.get(user);
      if (generation === undefined) {
        // A user without a generation (never written, or evicted) gets a fresh one: falling back
        // to a fixed value would reach entries stored before the eviction.
        counter += 1;
        generation = String(counter);
        generations.set(user, generation, { ttl: Math.max(ttlSeconds, 1) * 2000 });
      }
      return { generation, value: entries.get(`${user}:${generation}:${entry}`) };
    },
    async write(user, generation, entry, value, ttlSeconds) {
      entries.set(`${user}:${generation}:${entry}`, value, { ttl: ttlSeconds * 1000 });
    },
    async bump(user, ttlSeconds) {
      counter += 1;
      generations.set(user, String(counter), { ttl: ttlSeconds * 2000 });
    },
    async bumpEpoch() {
      entries.clear();
    },
    async ping() {},
    async close() {
      entries.clear();
      generations.clear();
    },
  };
}

// A missing generation (never written, expired or evicted) is replaced by the fresh token the
// caller passes, never read as a fixed default that older entries could still be stored under.
const READ_SCRIPT = `
local epoch = redis.call('GET', KEYS[1]) or '0'
local gen = redis.call('GET', KEYS[2])
if not gen then
  gen = ARGV[3]
  redis.call('SET', KEYS[2], gen, 'EX', ARGV[4])
end
local value = redis.call('GET', ARGV[1] .. epoch .. ':' .. gen .. ':' .. ARGV[2])
return {epoch .. ':' .. gen, value}`;

export interface RedisStoreOptions {
  url: string;
  prefix: string;
  timeoutMs: number;
  logger: Pick<FastifyBaseLogger, 'warn' | 'info'>;
}

/**
 * Redis store. Commands fail fast while disconnected (no offline queue, no retries per request)
 * and time out after `timeoutMs`: the caller then serves from the database. The client keeps
 * reconnecting in the background.
 */
export function redisStore(options: RedisStoreOptions): CacheStore {
  const { prefix } = options;
  const client = new Redis(options.url, {
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(options.timeoutMs, 1_000),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: false,
  });
  // Errors are reported by the commands that fail; the event only needs a listener.
  client.on('error', () => undefined);
  const reconnectListeners: (() => void)[] = [];
  let everReady = false;
  client.on('ready', () => {
    if (everReady) for (const listener of reconnectListeners) listener();
    everReady = true;
  });

  // Users are hashed: keys stay short, reveal no ids, and share a hash slot ({…}) per user.
  const userTag = (user: string) =>
    `${prefix}:{u:${createHash('sha256').update(user).digest('base64url').slice(0, 22)}}`;
  const epochKey = `${prefix}:epoch`;

  return {
    kind: 'redis',
    async read(user, entry, ttlSeconds = 0) {
      const tag = userTag(user);
      const [generation, value] = (await client.eval(
        READ_SCRIPT,
        2,
        epochKey,
        `${tag}:gen`,
        `${tag}:e`,
        entry,
        token(),
        String(Math.max(ttlSeconds, 1) * 2),
      )) as [string, string | null];
      return { generation, value: value ?? undefined };
    },
    async write(user, generation, entry, value, ttlSeconds) {
      await client.set(`${userTag(user)}:e${generation}:${entry}`, value, 'EX', ttlSeconds);
    },
    async bump(user, ttlSeconds) {
      await client.set(`${userTag(user)}:gen`, token(), 'EX', ttlSeconds * 2);
    },
    async bumpEpoch() {
      await client.set(epochKey, token());
    },
    async ping() {
      await client.ping();
    },
    async close() {
      client.disconnect();
    },
    onReconnect(listener) {
      reconnectListeners.push(listener);
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

/** 96 random bits: a generation or epoch value that never repeats. */
function token(): string {
  return randomBytes(12).toString('base64url');
}

export interface CacheOptions {
  ttlSeconds: number;
  logger: Pick<FastifyBaseLogger, 'warn' | 'info'>;
  registry?: Registry;
  /**
   * Runs first in every invalidation, after the write committed and before the generation moves
   * (read replicas record the write's WAL position here: see read-replicas.ts).
   */
  beforeInvalidate?: (user: string) => Promise<void>;
}

export type Cache = ReturnType<typeof createCache>;

/**
 * The cache as services use it: read-through with single flight, invalidation after commit, and
 * a store failure never failing a request: it is logged once per outage, counted, and the value
 * is computed from the database instead.
 */
export function createCache(store: CacheStore, options: CacheOptions) {
  const { ttlSeconds, logger } = options;
  const inFlight = new Map<string, Promise<string>>();
  const outage = outageLog(
    logger,
    { cache: store.kind },
    { down: 'cache unavailable; serving from the database', up: 'cache recovered' },
  );
  // Set when an invalidation could not reach the store: until every entry is made unreachable,
  // entries may be stale, so none is read.
  let epochBumpPending = false;

  const hits = new Counter({
    name: 'fido_cache_hits_total',
    help: 'Cache reads answered from the cache',
    registers: options.registry ? [options.registry] : [],
  });
  const misses = new Counter({
    name: 'fido_cache_misses_total',
    help: 'Cache reads computed from the database',
    registers: options.registry ? [options.registry] : [],
  });
  const errors = new Counter({
    name: 'fido_cache_errors_total',
    help: 'Cache operations that failed (the request was served from the database)',
    labelNames: ['operation'],
    registers: options.registry ? [options.registry] : [],
  });
  const latency = new Histogram({
    name: 'fido_cache_operation_seconds',
    help: 'Latency of cache store operations',
    labelNames: ['operation'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: options.registry ? [options.registry] : [],
  });

  /** Runs a store operation; undefined when it failed (and was logged and counted). */
  async function attempt<T>(
    operation: string,
    work: () => Promise<T>,
  ): Promise<{ value: T } | undefined> {
    const end = latency.startTimer({ operation });
    try {
      const result = { value: await work() };
      end();
      outage.succeeded();
      return result;
    } catch (error) {
      errors.inc({ operation });
      outage.failed(error);
      return undefined;
    }
  }

  async function ensureEpoch(): Promise<boolean> {
    if (!epochBumpPending) return true;
    const done = await attempt('bump_epoch', () => store.bumpEpoch());
    if (done === undefined) return false;
    epochBumpPending = false;
    logger.info({ cache: store.kind }, 'cache epoch bumped after an outage');
    return true;
  }

  // A process whose connection was lost may have missed bumps (its own, or it cannot know): it
  // makes every older entry unreachable before trusting the cache again.
  store.onReconnect?.(() => {
    epochBumpPending = true;
    void ensureEpoch();
  });

  /** The value for `entry` of `user`, from the cache or computed once (per process) and stored. */
  async function cached(
    user: string,
    entry: string,
    compute: () => Promise<string>,
  ): Promise<string> {
    if (!(await ensureEpoch())) return compute();
    const found = (await attempt('read', () => store.read(user, entry, ttlSeconds)))?.value;
    if (found?.value !== undefined) {
      hits.inc();
      return found.value;
    }
    misses.inc();
    // Without a generation there is no telling whether another reader started before or after
    // a write: share nothing.
    if (!found) return compute();
    const flightKey = `${user}\u0000${found.generation}\u0000${entry}`;
    const running = inFlight.get(flightKey);
    if (running) return running;
    const work = (async () => {
      const value = await compute();
      // Stored under the generation read before computing: if a write committed meanwhile, the
      // generation has moved on and nobody reads this entry.
      await attempt('write', () => store.write(user, found.generation, entry, value, ttlSeconds));
      return value;
    })();
    inFlight.set(flightKey, work);
    try {
      return await work;
    } finally {
      inFlight.delete(flightKey);
    }
  }

  /**
   * Call after a write commits: the user's cached entries are never read again. False when the
   * store could not be reached (this process then distrusts the cache until its epoch moves).
   */
  async function invalidate(user: string): Promise<boolean> {
    await options.beforeInvalidate?.(user);
    const done = await attempt('bump', () => store.bump(user, ttlSeconds));
    if (done === undefined && store.kind === 'redis') epochBumpPending = true;
    return done !== undefined;
  }

  return {
    kind: store.kind,
    cached,
    invalidate,
    /** 'degraded' while the store fails: requests are served from the database meanwhile. */
    async check(): Promise<'ok' | 'degraded'> {
      const ok = await attempt('ping', () => store.ping());
      // Reachable again after a stall: finish the pending epoch bump here, not on the next read.
      return ok !== undefined && (await ensureEpoch()) ? 'ok' : 'degraded';
    },
    close: () => store.close(),
  };
}

/** A short, fixed-length cache entry name for a query's parameters. */
export function cacheKey(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 22);
}
