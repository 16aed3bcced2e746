/**
 * Servers under test run as child processes, so that their CPU is not the load generator's and
 * their memory (RSS) is their own. Their stdout and stderr go to a log file, as a production log
 * shipper would take them; the listening port is read from that log.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const STARTUP_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;
const LISTENING = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/;

/** Every child still running, killed if the bench itself exits early. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface ServerProcess {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resident set size now, in MiB (from /proc/<pid>/status). */
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

/** Starts `node <args>` and resolves once it logs that it listens on 127.0.0.1. */
export async function startServer(options: {
  name: string;
  args: string[];
  env: Record<string, string>;
  logFile: string;
  cwd?: string;
}): Promise<ServerProcess> {
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
    url = LISTENING.exec(readFileSync(options.logFile, 'utf8'))?.[1];
    if (url === undefined) await sleep(50);
  }

  return {
    name: options.name,
    url,
    pid,
    logFile: options.logFile,
    rssMb: () => readRssMb(pid),
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
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3; utime is 14.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; returns the highest value seen. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number | undefined } {
  let max: number | undefined;
  const take = () => {
    const rss = readRssMb(pid);
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
