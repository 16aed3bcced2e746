import { createHash, randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Cluster } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { Counter, Histogram, type Registry } from 'prom-client';
import { outageLog } from './outage.js';
import { createRedisConnection, type RedisConnection } from './redis.js';

/**
 * Where cached entries live. Values are bytes: a hit is handed on as the bytes the store returned
 * (a finished response body, or a sealed one), with no text decoding of tens of kilobytes between
 * the store and the socket. Every entry of a user is stored under that user's current generation
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
  ): Promise<{ generation: string; value: Buffer | undefined }>;
  write(
    user: string,
    generation: string,
    entry: string,
    value: Buffer,
    ttlSeconds: number,
  ): Promise<void>;
  /** Makes every entry of the user unreachable. */
  bump(user: string, ttlSeconds: number): Promise<void>;
  /** Makes every entry of every user unreachable (after an outage hid some bumps). */
  bumpEpoch(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * Called when this process may have missed writes to the store, or may now reach data that did
   * not see them (a lost connection, a failover): Redis only. See `createCache`.
   */
  onDisruption?(listener: (reason: string) => void): void;
  /** Resolves once connected, or after `timeoutMs` regardless (the cache fails open). */
  ready?(timeoutMs: number): Promise<void>;
}

// A generation must never come back: a late writer holding an old one would otherwise be read.
// In Redis they are random tokens, not counters, so a Redis that restarts empty (or evicts a
// generation key) cannot hand out a value it handed out before; a user's key also outlives every
// entry under it. In-process, a counter that only grows does the same.

/** In-process store: bounded LRU for entries, a second one for generations. */
export function memoryStore(maxEntries: number): CacheStore {
  const entries = new LRUCache<string, Buffer>({ max: maxEntries, ttlAutopurge: false });
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

/**
 * Epoch shards. Every user belongs to one (by a hash of the user); the shard's epoch key and all of
 * the user's keys share one hash tag, so they live in one cluster slot and one script reads them
 * together. Bumping the epoch sets every shard's key: rare (after a disruption), 1,024 small writes.
 */
const EPOCH_SHARDS = 1_024;

// KEYS: the user's shard epoch, the user's generation. A missing generation (never written,
// expired or evicted) is replaced by the fresh token the caller passes, never read as a fixed
// default that older entries could still be stored under. Every key read or written is under the
// same hash tag as KEYS (one slot).
const READ_SCRIPT = `
local epoch = redis.call('GET', KEYS[1]) or '0'
local gen = redis.call('GET', KEYS[2])
if not gen then
  gen = ARGV[3]
  redis.call('SET', KEYS[2], gen, 'EX', ARGV[4])
end
local value = redis.call('GET', ARGV[1] .. epoch .. ':' .. gen .. ':' .. ARGV[2])
return {epoch .. ':' .. gen, value}`;

/**
 * `READ_SCRIPT` as a command of the client (`defineCommand`): sent as EVALSHA, its reply read as
 * bytes (the `Buffer` variant every defined command has), so a value is never decoded as text.
 */
interface ReadCommand {
  fidoCacheReadBuffer(
    epochKey: string,
    generationKey: string,
    entryPrefix: string,
    entry: string,
    freshGeneration: string,
    generationTtl: string,
  ): Promise<[Buffer, Buffer | null]>;
}

/** A user's Redis keys: the shard's epoch, the user's generation, and its entries' prefix. */
export function redisCacheKeys(
  prefix: string,
  user: string,
): { epoch: string; generation: string; entries: string } {
  // Users are hashed: keys stay short and reveal no ids.
  const digest = createHash('sha256').update(user).digest();
  const tag = `${prefix}:{s${digest.readUInt16BE(0) % EPOCH_SHARDS}}`;
  const id = digest.toString('base64url', 2, 18);
  return { epoch: `${tag}:epoch`, generation: `${tag}:g:${id}`, entries: `${tag}:e:${id}:` };
}

/**
 * Users whose Redis keys a process remembers: a hash per read cost ~2% of a cached read's CPU.
 * Bounded, like every other per-user table here.
 */
const KEYS_REMEMBERED_MAX = 10_000;

export type RedisStoreOptions = { prefix: string } & (
  | {
      /** The process's shared connection (closed by its owner, not by the store). */
      connection: RedisConnection;
    }
  | {
      /** A connection of the store's own (closed with it), to one server. */
      url: string;
      timeoutMs: number;
      logger?: Pick<FastifyBaseLogger, 'warn' | 'info'>;
    }
);

/**
 * Redis store, on one server or a cluster. Commands fail fast while disconnected and time out
 * (see `createRedisConnection`): the caller then serves from the database.
 *
 * Keys, for a user hashed to `id` in epoch shard `s`:
 * `PREFIX:{sS}:epoch` (the shard's epoch), `PREFIX:{sS}:g:ID` (the user's generation),
 * `PREFIX:{sS}:e:ID:EPOCH:GEN:ENTRY` (an entry). Users spread over 1,024 slots, so over every
 * master; no key is read by every request.
 */
export function redisStore(options: RedisStoreOptions): CacheStore {
  const { prefix } = options;
  const owned = 'url' in options;
  const connection = owned
    ? createRedisConnection({ url: options.url, timeoutMs: options.timeoutMs })
    : options.connection;
  const client = connection.client;
  client.defineCommand('fidoCacheRead', { numberOfKeys: 2, lua: READ_SCRIPT });
  const commands = client as unknown as ReadCommand;

  const remembered = new LRUCache<string, ReturnType<typeof redisCacheKeys>>({
    max: KEYS_REMEMBERED_MAX,
  });
  const keysOf = (user: string) => {
    let keys = remembered.get(user);
    if (keys === undefined) {
      keys = redisCacheKeys(prefix, user);
      remembered.set(user, keys);
    }
    return keys;
  };

  return {
    kind: 'redis',
    async read(user, entry, ttlSeconds = 0) {
      const keys = keysOf(user);
      const [generation, value] = await commands.fidoCacheReadBuffer(
        keys.epoch,
        keys.generation,
        keys.entries,
        entry,
        token(),
        String(Math.max(ttlSeconds, 1) * 2),
      );
      // Answered by a master other than the one trusted (a failover that may have lost writes):
      // the listeners hear of it before this answer is used.
      connection.checkTopology(keys.generation);
      return { generation: generation.toString('latin1'), value: value ?? undefined };
    },
    async write(user, generation, entry, value, ttlSeconds) {
      await client.set(`${keysOf(user).entries}${generation}:${entry}`, value, 'EX', ttlSeconds);
    },
    async bump(user, ttlSeconds) {
      await client.set(keysOf(user).generation, token(), 'EX', ttlSeconds * 2);
    },
    async bumpEpoch() {
      // Reads are checked against the masters as they are now: a slot that moves during or after
      // the bump is a new disruption, and a new bump.
      connection.trustTopology();
      const epoch = token();
      const keys = Array.from(
        { length: EPOCH_SHARDS },
        (_, shard) => `${prefix}:{s${shard}}:epoch`,
      );
      if (connection.kind === 'server') {
        await client.mset(...keys.flatMap((key) => [key, epoch]));
        return;
      }
      // One slot per shard: a cluster takes them one SET each (sent together, on each master).
      const results = await Promise.allSettled(keys.map((key) => client.set(key, epoch)));
      // Every shard must take it; one failure leaves the bump to be done again.
      const failed = results.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
    },
    async ping() {
      if (connection.kind === 'cluster') {
        // Every slot's master must answer: a cluster with a master down is degraded.
        const cluster = client as Cluster;
        const nodes = new Map(
          cluster
            .nodes('master')
            .map((node) => [`${node.options.host}:${node.options.port}`, node]),
        );
        const masters = new Set<string>();
        for (let slot = 0; slot < 16_384; slot += 1) masters.add(cluster.slots[slot]?.[0] ?? '');
        await Promise.all(
          [...masters].map(async (key) => {
            const node = nodes.get(key);
            if (!node)
              throw new Error(`no connection to the master of some slots (${key || 'none'})`);
            await node.ping();
          }),
        );
        return;
      }
      await client.ping();
    },
    async close() {
      if (owned) await connection.close();
    },
    onDisruption(listener) {
      connection.onDisruption(listener);
    },
    ready: (timeoutMs) => connection.ready(timeoutMs),
  };
}

const TOKEN_BYTES = 12;
/** Random bytes drawn at once for tokens: one call to the CSPRNG per 256 tokens. */
const TOKEN_POOL_BYTES = TOKEN_BYTES * 256;
let tokenPool = Buffer.alloc(0);
let tokenOffset = 0;

/**
 * 96 random bits: a generation or epoch value that never repeats. Every cache read sends one (the
 * generation a user without one gets), so they come from a pool: a call to randomBytes each cost
 * ~5% of a cached read's CPU.
 */
function token(): string {
  if (tokenOffset + TOKEN_BYTES > tokenPool.length) {
    tokenPool = randomBytes(TOKEN_POOL_BYTES);
    tokenOffset = 0;
  }
  tokenOffset += TOKEN_BYTES;
  return tokenPool.toString('base64url', tokenOffset - TOKEN_BYTES, tokenOffset);
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

/** How long after a failed epoch bump the next one is tried (reads use the database meanwhile). */
const EPOCH_RETRY_MS = 500;

/**
 * The cache as services use it: read-through with single flight, invalidation after commit, and
 * a store failure never failing a request: it is logged once per outage, counted, and the value
 * is computed from the database instead.
 */
export function createCache(store: CacheStore, options: CacheOptions) {
  const { ttlSeconds, logger } = options;
  const inFlight = new Map<string, Promise<Buffer>>();
  const outage = outageLog(
    logger,
    { cache: store.kind },
    { down: 'cache unavailable; serving from the database', up: 'cache recovered' },
  );
  // Set when an invalidation could not reach the store, or the store was disrupted (see
  // `onDisruption`): until every entry is made unreachable, entries may be stale, so none is read.
  let epochBumpPending = false;
  // Counts disruptions: an answer read while one happened is not used, nor is one stored.
  let disruptions = 0;
  let bumping: Promise<boolean> | undefined;
  // After a failed bump, reads go to the database for a moment rather than each trying again.
  let bumpFailedAt = Number.NEGATIVE_INFINITY;

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

  /** True when no epoch bump is pending (any pending one done now); one bump at a time. */
  async function ensureEpoch(): Promise<boolean> {
    if (!epochBumpPending) return true;
    if (!bumping && Date.now() - bumpFailedAt < EPOCH_RETRY_MS) return false;
    bumping ??= (async () => {
      const seen = disruptions;
      const done = await attempt('bump_epoch', () => store.bumpEpoch());
      if (done === undefined) {
        bumpFailedAt = Date.now();
        return false;
      }
      // Disrupted again while bumping: the bump may have missed the data now reached.
      if (disruptions !== seen) return false;
      epochBumpPending = false;
      logger.info({ cache: store.kind }, 'cache epoch bumped after an outage');
      return true;
    })().finally(() => (bumping = undefined));
    return bumping;
  }

  function disrupted(): void {
    disruptions += 1;
    epochBumpPending = true;
  }

  /*
   * Why no read is stale (docs/scaling.md, "Why no cached read is stale"): an entry is stored under
   * the user's generation and the user's shard epoch as read, in one script, before it was
   * computed; a committed write moves the generation before it answers. A write whose move could
   * not be confirmed, a lost connection, and a change of the master serving any slot (a failover,
   * which can lose acknowledged writes) each mark the epoch pending: this process then reads and
   * stores nothing until a new epoch is written to every shard, which makes every older entry
   * unreachable. Each process watches its own connections, so each one that could reach data a
   * disruption touched bumps before reading it again.
   */
  store.onDisruption?.((reason) => {
    disrupted();
    logger.info({ cache: store.kind, reason }, 'cache disrupted; bumping the epoch before reading');
    void ensureEpoch();
  });

  /** The value for `entry` of `user`, from the cache or computed once (per process) and stored. */
  async function cached(
    user: string,
    entry: string,
    compute: () => Promise<Buffer>,
  ): Promise<Buffer> {
    if (!(await ensureEpoch())) return compute();
    const seen = disruptions;
    const found = (await attempt('read', () => store.read(user, entry, ttlSeconds)))?.value;
    // A disruption while reading: the answer may come from data that missed a write.
    if (disruptions !== seen) return compute();
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
      // generation has moved on and nobody reads this entry. Not stored at all across a
      // disruption (nor while an epoch bump is pending).
      if (disruptions === seen && !epochBumpPending) {
        await attempt('write', () => store.write(user, found.generation, entry, value, ttlSeconds));
      }
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
    if (done === undefined && store.kind === 'redis') {
      disrupted();
      void ensureEpoch();
    }
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

/** Entry names a process remembers (most reads repeat a few queries: page 1, one currency). */
const ENTRY_NAMES_REMEMBERED_MAX = 10_000;
const entryNames = new LRUCache<string, string>({ max: ENTRY_NAMES_REMEMBERED_MAX });

/** A short, fixed-length cache entry name for a query's parameters. */
export function cacheKey(parts: readonly unknown[]): string {
  const text = JSON.stringify(parts);
  let name = entryNames.get(text);
  if (name === undefined) {
    name = createHash('sha256').update(text).digest('base64url').slice(0, 22);
    entryNames.set(text, name);
  }
  return name;
}
