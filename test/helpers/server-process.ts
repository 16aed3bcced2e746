import type { ChildProcess } from 'node:child_process';
import { spawnEntry } from './entry.js';

/*
 * Every wait is for a condition (a log line, an exit, a closed socket), never a fixed sleep; the
 * bounds only catch a hang. They are sized for a fresh clone on a loaded 2-core machine, where
 * start-up (compiling TypeScript, creating a PGlite database) took over a minute.
 */
export const START_TIMEOUT_MS = 180_000;
export const EXIT_TIMEOUT_MS = 60_000;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One server process and everything it has said so far. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;
  private readonly listeners = new Set<() => void>();

  /** `cwd` should be an empty directory, so a developer's .env cannot leak in. */
  constructor(env: Record<string, string>, cwd: string, entry: 'server' | 'worker' = 'server') {
    this.child = spawnEntry(entry, env, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
    let partial = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      partial += chunk;
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) {
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not a log line; kept in `stdout` for the failure message.
        }
      }
      this.notify();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Waits for a log line whose message matches; fails if the process exits first. */
  async logLine(pattern: RegExp, ms = START_TIMEOUT_MS): Promise<Record<string, unknown>> {
    return this.until(ms, `a log line matching ${pattern}`, () =>
      this.lines.find((line) => pattern.test(String(line.msg))),
    );
  }

  /** The port from Fastify's "Server listening at http://127.0.0.1:PORT" line. */
  async listeningPort(): Promise<number> {
    const line = await this.logLine(/^Server listening at http:\/\/127\.0\.0\.1:\d+$/);
    return Number(/:(\d+)$/.exec(String(line.msg))?.[1]);
  }

  async exitWithin(ms = EXIT_TIMEOUT_MS): Promise<Exit> {
    return within(this.exited, ms, () => `the server to exit\n${this.output()}`);
  }

  output(): string {
    return `--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`;
  }

  private until<T>(ms: number, what: string, probe: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = probe();
        if (found !== undefined) return finish(() => resolve(found));
        if (this.exit) {
          const { code, signal } = this.exit;
          finish(() =>
            reject(new Error(`server exited (${code ?? signal}) before ${what}\n${this.output()}`)),
          );
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`timed out waiting for ${what}\n${this.output()}`))),
        ms,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export async function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
