import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** How long start() waits for the server to answer PING, and stop() for it to exit. */
const START_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;

/** A free TCP port on 127.0.0.1: one the kernel just handed out to a listener now closed. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One PING over a fresh connection; true when the answer is +PONG. */
function pingOnce(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) finish(answer.startsWith('+PONG'));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

/**
 * A private `redis-server` on 127.0.0.1 that a test may stop and start again on the same port.
 * Nothing is persisted (`--save "" --appendonly no`): a restart comes back empty.
 */
export class RedisServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';
  private listeningPort = 0;
  private readonly dir = mkdtempSync(join(tmpdir(), 'fido-redis-'));

  /** `extraArgs` go after the defaults (cluster mode, say); `port` fixes the port up front. */
  constructor(
    private readonly extraArgs: readonly string[] = [],
    port = 0,
  ) {
    this.listeningPort = port;
  }

  /** The port it listens on; stable across stop() and start(). */
  get port(): number {
    if (this.listeningPort === 0) throw new Error('RedisServer: start() it first');
    return this.listeningPort;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /**
   * Starts the server and waits until it answers PING. The first start picks a free port (and
   * retries with another if that one was taken meanwhile); later starts reuse it.
   */
  async start(): Promise<void> {
    if (this.child) return;
    if (this.listeningPort !== 0) {
      await this.launch(this.listeningPort);
      return;
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const port = await freePort();
      try {
        await this.launch(port);
        this.listeningPort = port;
        return;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /** SIGTERM, then waits for the process to exit (SIGKILL if it takes too long). */
  async stop(): Promise<void> {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited) return;
    child.kill('SIGTERM');
    if (!(await within(exited, STOP_TIMEOUT_MS))) {
      child.kill('SIGKILL');
      await within(exited, STOP_TIMEOUT_MS);
    }
  }

  /** Kills the server at once (tear-down) and removes its working directory. */
  async kill(): Promise<void> {
    const exited = this.exited;
    if (this.child && exited) {
      this.child.kill('SIGKILL');
      await within(exited, STOP_TIMEOUT_MS);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(port: number): Promise<void> {
    this.output = '';
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--dir',
        this.dir,
        '--loglevel',
        'warning',
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-4_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let spawnError: Error | undefined;
    let gone = false;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        spawnError = error;
        gone = true;
        resolve();
      });
      child.once('exit', () => {
        gone = true;
        resolve();
      });
    });
    void exited.then(() => {
      if (this.child === child) {
        this.child = undefined;
        this.exited = undefined;
      }
    });
    this.child = child;
    this.exited = exited;
    killOnExit.add(child);
    void exited.then(() => killOnExit.delete(child));

    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && !gone) {
      if (await pingOnce(port, 250)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.kill('SIGKILL');
    await within(exited, STOP_TIMEOUT_MS);
    const reason = spawnError
      ? (spawnError as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'redis-server is not on PATH'
        : spawnError.message
      : gone
        ? 'it exited'
        : `no PONG within ${START_TIMEOUT_MS} ms`;
    throw new Error(`redis-server on port ${port} did not start: ${reason}\n${this.output}`);
  }
}

/** Children still running when the worker exits are killed, whatever the test did. */
const killOnExit = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of killOnExit) child.kill('SIGKILL');
});

async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Registers a private Redis for the file: started before its tests, always killed after them.
 * Read the server inside tests or hooks, not at module load.
 */
export function useRedisServer(): RedisServer {
  const server = new RedisServer();
  beforeAll(async () => {
    await server.start();
  });
  afterAll(async () => {
    await server.kill();
  });
  return server;
}
