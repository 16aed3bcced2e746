import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';

/**
 * The process's one Redis connection: a single server (REDIS_URL) or a Redis Cluster
 * (REDIS_CLUSTER_NODES), shared by the cache, the rate limiter and anything else that uses Redis.
 *
 * Commands fail fast while disconnected (no offline queue, no retries per request) and time out
 * after `timeoutMs`: callers fall back (the cache to the database, the limiter to process memory).
 * The client keeps reconnecting in the background.
 *
 * Commands are auto-pipelined (ioredis `enableAutoPipelining`): those issued in one turn of the
 * event loop (every request read in one poll) leave in one write, per master on a cluster. One
 * write(2) to Redis per cache read was a quarter of a cached analytics request's CPU.
 */
export interface RedisConnection {
  readonly kind: 'server' | 'cluster';
  readonly client: Redis | Cluster;
  /** Resolves once connected, or after `timeoutMs` regardless (callers fail open). */
  ready(timeoutMs: number): Promise<void>;
  /**
   * `listener` is told when this process may have missed writes to Redis or may now reach data
   * that did not see them: a connection (to the server, or to any cluster node) that was up went
   * down, or the master serving some slot changed (a failover, a resharding). Called at once, from
   * the event, before any later command of this process can be answered.
   */
  onDisruption(listener: (reason: string) => void): void;
  /**
   * Records the current slot → master map as the one later commands are checked against (cluster;
   * a no-op on one server). Done once connected, and by the cache when it bumps its epoch.
   */
  trustTopology(): void;
  /** After a command on `key` returned: a disruption if its slot's master is not the trusted one. */
  checkTopology(key: string): void;
  close(): Promise<void>;
}

export interface RedisConnectionOptions {
  /** One server; or */
  url?: string;
  /** the seeds of a cluster. */
  clusterNodes?: readonly string[];
  timeoutMs: number;
}

/** How often a cluster client re-reads which master serves which slot. */
const CLUSTER_SLOTS_REFRESH_MS = 5_000;

export function createRedisConnection(options: RedisConnectionOptions): RedisConnection {
  const common: RedisOptions = {
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(options.timeoutMs, 1_000),
    maxRetriesPerRequest: 0,
  };
  const listeners: ((reason: string) => void)[] = [];
  let closing = false;
  const disrupted = (reason: string) => {
    if (closing) return;
    for (const listener of listeners) listener(reason);
  };

  /** Reports a disruption when a connection that was up closes. */
  const watch = (connection: Redis, name: string) => {
    let up = connection.status === 'ready';
    connection.on('ready', () => (up = true));
    connection.on('close', () => {
      if (!up) return;
      up = false;
      disrupted(`connection to ${name} lost`);
    });
  };

  if (options.clusterNodes && options.clusterNodes.length > 0) {
    const seeds = options.clusterNodes.map((seed) => new URL(seed));
    const first = seeds[0]!;
    const client = new Cluster(
      seeds.map((url): ClusterNode => ({ host: url.hostname, port: Number(url.port) })),
      {
        enableAutoPipelining: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
        slotsRefreshTimeout: Math.max(options.timeoutMs, 1_000),
        // ioredis refreshes its slot map only on a redirection unless told to: a map read while a
        // failover was under way kept pointing at the stopped master, and readiness (which pings
        // each slot's master from that map) stayed degraded after the cluster had recovered.
        slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
        redisOptions: {
          ...common,
          ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
          ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
          ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
        },
      },
    );
    // Errors are reported by the commands that fail; the events only need a listener.
    client.on('error', () => undefined);
    client.on('node error', () => undefined);
    client.on('+node', (node: Redis, key: string) => watch(node, key ?? 'a cluster node'));

    let trusted: string[] = [];
    const masterOf = (slot: number): string | undefined => client.slots[slot]?.[0];
    const trustTopology = () => {
      trusted = Array.from({ length: 16_384 }, (_, slot) => masterOf(slot) ?? '');
    };
    // The masters as first seen are the ones trusted; a later change is a disruption.
    client.once('ready', trustTopology);
    client.on('refresh', () => {
      if (trusted.length === 0) return;
      for (let slot = 0; slot < trusted.length; slot += 1) {
        if (masterOf(slot) !== trusted[slot]) {
          disrupted(`slot ${slot} moved from ${trusted[slot]} to ${masterOf(slot)}`);
          return;
        }
      }
    });
    return {
      kind: 'cluster',
      client,
      ready: (timeoutMs) => readyWithin(client, timeoutMs),
      onDisruption: (listener) => listeners.push(listener),
      trustTopology,
      checkTopology(key) {
        if (trusted.length === 0) return;
        const slot = calculateSlot(key);
        if (masterOf(slot) !== trusted[slot]) {
          disrupted(`slot ${slot} moved from ${trusted[slot]} to ${masterOf(slot)}`);
        }
      },
      async close() {
        closing = true;
        client.disconnect();
      },
    };
  }

  if (!options.url) throw new Error('createRedisConnection needs url or clusterNodes');
  const client = new Redis(options.url, {
    ...common,
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  client.on('error', () => undefined);
  watch(client, 'Redis');
  return {
    kind: 'server',
    client,
    ready: (timeoutMs) => readyWithin(client, timeoutMs),
    onDisruption: (listener) => listeners.push(listener),
    trustTopology() {},
    checkTopology() {},
    async close() {
      closing = true;
      client.disconnect();
    },
  };
}

async function readyWithin(client: Redis | Cluster, timeoutMs: number): Promise<void> {
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
}
