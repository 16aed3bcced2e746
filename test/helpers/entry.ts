import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** `node --import tsx`, resolved here so an entry can run from any working directory. */
export const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * A process entry (`src/server.ts`, `src/worker.ts`, `src/cli.ts` with `args`) as an operator
 * starts it, from source: `env` is its whole environment besides PATH, so nothing of the test
 * runner's leaks in.
 */
export function spawnEntry(
  entry: 'server' | 'worker' | 'cli',
  env: Record<string, string>,
  options: { cwd?: string; stdio?: StdioOptions; args?: readonly string[] } = {},
): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', TSX_LOADER, path.join(REPO_ROOT, 'src', `${entry}.ts`), ...(options.args ?? [])],
    {
      cwd: options.cwd ?? REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: options.stdio ?? 'ignore',
    },
  );
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Waits for `child` (spawned with piped stdout and stderr) to exit, with what it printed. */
export function finished(child: ChildProcess): Promise<Finished> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
