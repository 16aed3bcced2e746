/**
 * Servers under test run as child processes, so that their CPU is not the load generator's and
 * their memory (RSS) is their own. Their stdout and stderr go to a log file, as a production log
 * shipper would take them; the listening port is read from that log.
 *
 * A server may be a process tree: with WEB_CONCURRENCY=N the API is a supervisor plus N HTTP
 * processes (Node cluster, one shared port). Its RSS and CPU are then summed over the tree
 * (readTreeRssMb, readTreeCpuMs); readRssMb and readCpuMs stay per process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const STARTUP_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;
const LISTENING_ALL = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/g;

/** Every child still running, killed if the bench itself exits early. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface ServerProcess {
  readonly name: string;
  readonly url: string;
  /** The process started: the server itself, or the supervisor of its HTTP processes. */
  readonly pid: number;
  /** HTTP processes serving the port: 1, or the supervisor's children. */
  readonly httpProcesses: number;
  readonly logFile: string;
  /** Resident set size now, in MiB, summed over the process and its descendants. */
  rssMb(): number | undefined;
  /** SIGTERM, then SIGKILL if it has not exited within the bound. */
  stop(): Promise<void>;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function readRssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/**
 * Starts `node <args>` and resolves once it logs that it listens on 127.0.0.1: once per HTTP
 * process (`httpProcesses`, 1 unless it is a cluster supervisor), all on the same address.
 */
export async function startServer(options: {
  name: string;
  args: string[];
  env: Record<string, string>;
  logFile: string;
  cwd?: string;
  httpProcesses?: number;
}): Promise<ServerProcess> {
  const httpProcesses = options.httpProcesses ?? 1;
  const fd = openSync(options.logFile, 'a');
  const child = spawn(process.execPath, options.args, {
    cwd: options.cwd ?? process.cwd(),
    env: options.env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  running.add(child);
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = signal ?? String(code);
      running.delete(child);
      resolve();
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${options.name} did not start`);

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let url: string | undefined;
  while (url === undefined) {
    if (exited !== undefined) {
      throw new Error(
        `${options.name} exited (${exited}) before listening:\n${tail(options.logFile)}`,
      );
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${options.name} did not listen within ${STARTUP_TIMEOUT_MS} ms`);
    }
    const urls = [...readFileSync(options.logFile, 'utf8').matchAll(LISTENING_ALL)].map(
      (m) => m[1]!,
    );
    if (new Set(urls).size > 1) {
      child.kill('SIGKILL');
      throw new Error(
        `${options.name}: its processes listen on different addresses: ${urls.join(', ')}`,
      );
    }
    if (urls.length >= httpProcesses) url = urls[0];
    else await sleep(50);
  }

  return {
    name: options.name,
    url,
    pid,
    httpProcesses,
    logFile: options.logFile,
    rssMb: () => readTreeRssMb(pid),
    async stop() {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([
        exit.then(() => true),
        sleep(STOP_TIMEOUT_MS).then(() => false),
      ]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

const CLOCK_TICKS_PER_SECOND = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(out.stdout?.trim());
  return out.status === 0 && ticks > 0 ? ticks : 100;
})();

/** CPU time (user + system) a process has used so far, in ms (from /proc/<pid>/stat). */
export function readCpuMs(pid: number): number | undefined {
  const fields = statFields(pid);
  if (!fields) return undefined;
  // fields[0] is field 3; utime is field 14, stime 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND : undefined;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces): field 3 onwards. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Direct children, from /proc/<pid>/task/<tid>/children; undefined if the kernel lacks it. */
function childrenFromTasks(pid: number): number[] | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const task of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
      for (const child of text.split(' ')) if (child.trim() !== '') children.push(Number(child));
    } catch (error) {
      // No such file in any task: a kernel without CONFIG_PROC_CHILDREN.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    }
  }
  return children;
}

/** Every process's parent, from /proc/<pid>/stat (field 4). */
function parentsByScan(): Map<number, number[]> {
  const byParent = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = byParent.get(ppid) ?? [];
    list.push(Number(entry));
    byParent.set(ppid, list);
  }
  return byParent;
}

/** The process and all its descendants (the process first). */
export function processTree(pid: number): number[] {
  const tree = [pid];
  let scanned: Map<number, number[]> | undefined;
  for (let i = 0; i < tree.length; i += 1) {
    const children =
      childrenFromTasks(tree[i]!) ?? (scanned ??= parentsByScan()).get(tree[i]!) ?? [];
    for (const child of children) if (!tree.includes(child)) tree.push(child);
  }
  return tree;
}

const sum = (values: (number | undefined)[]): number | undefined =>
  values.some((v) => v === undefined)
    ? undefined
    : values.reduce<number>((total, v) => total + v!, 0);

/**
 * RSS of a process and its descendants, in MiB. Each process's RSS counts the pages it shares with
 * the others (the node binary, libraries) again, so a tree's sum is an upper bound.
 */
export function readTreeRssMb(pid: number, tree = processTree(pid)): number | undefined {
  return sum(tree.map(readRssMb));
}

/**
 * CPU time of a process and its live descendants, in ms, with the pids it covers: a difference of
 * two readings holds only if both cover the same processes (a child that exits takes its time away).
 */
export function readTreeCpuMs(pid: number): { ms: number; pids: string } | undefined {
  const tree = processTree(pid);
  const ms = sum(tree.map(readCpuMs));
  return ms === undefined ? undefined : { ms, pids: [...tree].sort((a, b) => a - b).join(',') };
}

/**
 * Samples the RSS of a process and its descendants every `everyMs` until stopped; returns the
 * highest sum seen. The tree is looked up again every second, not on every sample: without
 * /proc/<pid>/task/<tid>/children that means reading every process's stat.
 */
export function sampleRss(pid: number, everyMs = 100): { stop(): number | undefined } {
  let max: number | undefined;
  let tree = processTree(pid);
  let treeAt = Date.now();
  const take = () => {
    if (Date.now() - treeAt >= 1_000) {
      tree = processTree(pid);
      treeAt = Date.now();
    }
    const rss = readTreeRssMb(pid, tree);
    if (rss !== undefined && (max === undefined || rss > max)) max = rss;
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return max;
    },
  };
}

/** The TCP socket inode for the connection from 127.0.0.1:`fromPort` to 127.0.0.1:`toPort`, server side. */
function serverSocketInode(toPort: number, fromPort: number): string | undefined {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
  const local = `0100007F:${hex(toPort)}`;
  const remote = `0100007F:${hex(fromPort)}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(local) && f[2]?.endsWith(remote)) return f[9];
    }
  }
  return undefined;
}

/**
 * Which of `pids` holds the server side of the connection from 127.0.0.1:`fromPort` to the server
 * on 127.0.0.1:`toPort` (while that connection is open): how the bench tells the HTTP processes of
 * a cluster apart, since they share one port.
 */
export function socketOwner(toPort: number, fromPort: number, pids: number[]): number | undefined {
  const inode = serverSocketInode(toPort, fromPort);
  if (inode === undefined || inode === '0') return undefined;
  const link = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return pid;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}

/** A bare Fastify hello world: the ceiling of HTTP on this machine, with this Node. */
export const HELLO_WORLD_SOURCE = `
import Fastify from 'fastify';
const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
const address = await app.listen({ host: '127.0.0.1', port: 0 });
console.log(JSON.stringify({ msg: 'Server listening at ' + address }));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => app.close().then(() => process.exit(0)));
}
`;

/** A bench knob from the environment: a number ≥ 0, or `fallback` when unset or empty. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0`);
  return value;
}
