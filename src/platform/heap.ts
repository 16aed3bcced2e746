import { spawn } from 'node:child_process';
import os from 'node:os';

/**
 * The heap bounds the HTTP server gives itself. Node sizes V8's old space by the memory it may
 * use (a quarter of it: 4 GiB on this 24 GiB machine), and V8 collects the old space late when
 * there is room, so RSS under load was mostly garbage not yet collected (187-296 MB over a live
 * heap of ~50 MB). A bound of HEAP_OLD_SPACE_MB, with the young generation kept at Node's
 * default, keeps it under 250 MB (docs/performance.md has the measurements and what it costs).
 *
 * V8 reads these flags only when the process starts, so a server that needs them starts itself
 * again with them (`relaunch`) and stays beside it, forwarding signals and its exit code.
 * Nothing is added when the operator sized the heap (a flag on the command line or in
 * NODE_OPTIONS), when HEAP_OLD_SPACE_MB=0, or when Node's own bound is already lower (a
 * container's memory limit: Node sizes by it).
 */

/** A flag that sizes V8's heap: given by the operator, it wins and none of ours is added. */
const HEAP_FLAG = /(?:^|\s)--max[-_](?:old[-_]space|semi[-_]space|heap)[-_]size\b/;
/** Node's default young-generation semi-space (MiB), passed explicitly: V8 shrinks it otherwise. */
export const HEAP_SEMI_SPACE_MB = 16;
/** Node gives the old space this fraction of the memory it may use. */
const NODE_OLD_SPACE_SHARE = 0.25;
/** The argument that marks a server started by `relaunch` (it watches its launcher). */
export const RELAUNCHED_ARG = '--fido-relaunched';

/** The memory this process may use, in MiB: the container's limit when there is one. */
export function memoryLimitMb(): number {
  const total = os.totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return (constrained > 0 && constrained < total ? constrained : total) / 2 ** 20;
}

/** The Node flags to start the server with: none when nobody needs them (see above). */
export function heapArguments(options: {
  oldSpaceMb: number;
  execArgv: readonly string[];
  nodeOptions: string;
  memoryMb: number;
}): string[] {
  if (options.oldSpaceMb === 0) return [];
  if (options.execArgv.some((arg) => HEAP_FLAG.test(arg))) return [];
  if (HEAP_FLAG.test(options.nodeOptions)) return [];
  if (options.memoryMb * NODE_OLD_SPACE_SHARE <= options.oldSpaceMb) return [];
  return [
    `--max-old-space-size=${options.oldSpaceMb}`,
    `--max-semi-space-size=${HEAP_SEMI_SPACE_MB}`,
  ];
}

/** Signals the launcher passes on to the server it started. */
const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/**
 * Starts this same entry again with `nodeArguments` first and stays beside it: signals are passed
 * on, and its exit code (128 + the signal's number when a signal ended it) becomes this process's.
 * It stays in this process's session and group (a session of its own would be scheduled as a
 * separate group, and got markedly less CPU on a busy machine), so a terminal's Ctrl-C reaches it
 * twice, which a server that is already stopping ignores. It stops, as on SIGTERM, if this
 * process dies (its IPC channel closes).
 */
export function relaunch(nodeArguments: readonly string[]): void {
  const child = spawn(
    process.execPath,
    [...nodeArguments, ...process.execArgv, ...process.argv.slice(1), RELAUNCHED_ARG],
    // An IPC channel, which closes when this process dies (see watchLauncher).
    { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] },
  );
  for (const signal of FORWARDED_SIGNALS) process.on(signal, () => child.kill(signal));
  child.once('error', (error) => {
    process.stderr.write(`fido-transactions-api failed to start: ${error.message}\n`);
    process.exit(1);
  });
  child.once('exit', (code, signal) => {
    process.exit(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0));
  });
}

/**
 * In a server started by `relaunch`: stops it (as SIGTERM does) when the launcher is gone, so a
 * launcher killed outright (SIGKILL) leaves no server behind holding the port and the data.
 */
export function watchLauncher(): void {
  if (!process.argv.includes(RELAUNCHED_ARG) || !process.channel) return;
  // Nothing is ever sent on it: it only closes, when the launcher is gone.
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
