import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { freePort, RedisServer } from './redis-server.js';

const run = promisify(execFile);

/** How long start() waits for every node to report `cluster_state:ok` and the same slot map. */
const FORM_TIMEOUT_MS = 30_000;
/** Short, so a stopped master's replica takes over within seconds in the restart tests. */
const NODE_TIMEOUT_MS = 2_000;

export interface ClusterNode {
  readonly server: RedisServer;
  readonly port: number;
  /** The cluster's node id (40 hex characters). */
  readonly id: string;
}

/**
 * A private Redis Cluster on 127.0.0.1 from the machine's `redis-server` (7.x): `masters` masters
 * (3 by default) each with `replicasPerMaster` replicas, on free ports, each node in a temp dir of
 * its own (its `nodes.conf` survives a stop and start; the data does not: no persistence). Used by
 * test/integration/redis and by the bench. Always `kill()` it (`useRedisCluster` does).
 */
export class RedisCluster {
  readonly nodes: ClusterNode[] = [];
  private readonly masters: number;
  private readonly replicasPerMaster: number;

  constructor(options: { masters?: number; replicasPerMaster?: number } = {}) {
    this.masters = options.masters ?? 3;
    this.replicasPerMaster = options.replicasPerMaster ?? 0;
  }

  /** `REDIS_CLUSTER_NODES` for the app: every node as a seed. */
  get seeds(): string {
    return this.nodes.map((node) => `redis://127.0.0.1:${node.port}`).join(',');
  }

  async start(): Promise<void> {
    const count = this.masters * (1 + this.replicasPerMaster);
    for (let i = 0; i < count; i += 1) {
      const server = new RedisServer([
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        String(NODE_TIMEOUT_MS),
        '--cluster-port',
        String(await freePort()),
        // A master whose replica is gone keeps serving its slots; tests stop nodes on purpose.
        '--cluster-require-full-coverage',
        'no',
        '--cluster-allow-replica-migration',
        'no',
      ]);
      this.nodes.push({ server, port: 0, id: '' });
      await server.start();
      (this.nodes[i] as { port: number }).port = server.port;
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...this.nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        String(this.replicasPerMaster),
        '--cluster-yes',
      ],
      { timeout: FORM_TIMEOUT_MS },
    );
    for (const node of this.nodes) {
      (node as { id: string }).id = String(await this.command(node.port, 'CLUSTER', 'MYID'));
    }
    await this.settled();
  }

  /** Waits until every running node says `cluster_state:ok` and all agree on the masters. */
  async settled(timeoutMs = FORM_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const views = new Set<string>();
        let ok = true;
        const running = this.nodes.filter((n) => n.server.running);
        for (const node of running) {
          const info = String(await this.command(node.port, 'CLUSTER', 'INFO'));
          if (!info.includes('cluster_state:ok')) ok = false;
          const roles = await this.roles(node.port);
          // Every running node is known, as a master with slots or as a replica of one.
          const masters = new Set(await this.slotMasters(node.port));
          if (roles.masters.filter((port) => !masters.has(port)).length > 0) ok = false;
          if (roles.masters.length + roles.replicas.length < running.length) ok = false;
          views.add(JSON.stringify([...masters].sort()));
        }
        last = [...views].join(' | ');
        if (ok && views.size === 1) return;
      } catch (error) {
        last = String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the Redis Cluster did not settle within ${timeoutMs} ms: ${last}`);
  }

  /** One command over a fresh plain connection to one node. */
  async command(port: number, ...args: string[]): Promise<unknown> {
    const client = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await client.call(args[0]!, ...args.slice(1));
    } finally {
      client.disconnect();
    }
  }

  /** Ports of the masters, sorted by the first slot each serves (as `port` seen by `via`). */
  async slotMasters(via?: number): Promise<number[]> {
    const port = via ?? this.nodes.find((n) => n.server.running)!.port;
    const slots = (await this.command(port, 'CLUSTER', 'SLOTS')) as [
      number,
      number,
      [string, number],
    ][];
    return slots.sort((a, b) => a[0] - b[0]).map((range) => range[2][1]);
  }

  /** Node ports by role, from CLUSTER NODES of a running node. */
  async roles(
    via = this.nodes.find((n) => n.server.running)!.port,
  ): Promise<{ masters: number[]; replicas: { port: number; of: number }[] }> {
    const lines = String(await this.command(via, 'CLUSTER', 'NODES'))
      .trim()
      .split('\n');
    const byId = new Map<string, number>();
    const parsed = lines.map((line) => {
      const [id, address, flags, masterId] = line.split(' ') as [string, string, string, string];
      const port = Number(address.split('@')[0]!.split(':')[1]);
      byId.set(id, port);
      return { port, flags, masterId };
    });
    const live = parsed.filter((n) => !n.flags.includes('fail'));
    return {
      masters: live.filter((n) => n.flags.includes('master')).map((n) => n.port),
      replicas: live
        .filter((n) => n.flags.includes('slave'))
        .map((n) => ({ port: n.port, of: byId.get(n.masterId) ?? 0 })),
    };
  }

  /** The port of the master serving `key` now. */
  async masterOf(key: string): Promise<number> {
    const slot = Number(await this.command(this.nodes[0]!.port, 'CLUSTER', 'KEYSLOT', key));
    const via = this.nodes.find((n) => n.server.running)!.port;
    const slots = (await this.command(via, 'CLUSTER', 'SLOTS')) as [
      number,
      number,
      [string, number],
    ][];
    const range = slots.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no master serves slot ${slot}`);
    return range[2][1];
  }

  /** Keys under `pattern` on each master, by port (SCAN of each master's own keyspace). */
  async keysPerMaster(pattern: string): Promise<Map<number, string[]>> {
    const result = new Map<number, string[]>();
    for (const port of (await this.roles()).masters) {
      const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 });
      client.on('error', () => undefined);
      try {
        const keys: string[] = [];
        let cursor = '0';
        do {
          const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          keys.push(...batch);
        } while (cursor !== '0');
        result.set(port, keys);
      } finally {
        client.disconnect();
      }
    }
    return result;
  }

  /** `CLUSTER FAILOVER` on a replica of the master at `masterPort`; resolves once it is master. */
  async failover(masterPort: number): Promise<number> {
    const replica = (await this.roles()).replicas.find((r) => r.of === masterPort);
    if (!replica) throw new Error(`master ${masterPort} has no replica`);
    await this.command(replica.port, 'CLUSTER', 'FAILOVER');
    const deadline = Date.now() + FORM_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const roles = await this.roles();
      if (roles.masters.includes(replica.port) && !roles.masters.includes(masterPort)) {
        await this.settled();
        return replica.port;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`replica ${replica.port} did not take over from ${masterPort}`);
  }

  /** `CLIENT PAUSE ms ALL` on one node: every client's commands wait until it ends. */
  async pause(port: number, ms: number): Promise<number> {
    await this.command(port, 'CLIENT', 'PAUSE', String(ms), 'ALL');
    return Date.now() + ms;
  }

  node(port: number): ClusterNode {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node on port ${port}`);
    return node;
  }

  /** A cluster client for inspecting (never the app's). Disconnect it. */
  client(): Cluster {
    const client = new Cluster(
      this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    client.on('error', () => undefined);
    return client;
  }

  /** Kills every node at once and removes their directories. */
  async kill(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.server.kill()));
  }
}

/** A private cluster for the file: started before its tests, always killed after them. */
export function useRedisCluster(
  options: ConstructorParameters<typeof RedisCluster>[0] = {},
): RedisCluster {
  const cluster = new RedisCluster(options);
  beforeAll(async () => {
    await cluster.start();
  }, 60_000);
  afterAll(async () => {
    await cluster.kill();
  });
  return cluster;
}
