import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** `node --import tsx`, resolved here so an entry can run from any working directory. */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * A process entry (`src/server.ts`, `src/worker.ts`) as an operator starts it, from source:
 * `env` is its whole environment besides PATH, so nothing of the test runner's leaks in.
 */
export function spawnEntry(
  entry: 'server' | 'worker',
  env: Record<string, string>,
  options: { cwd?: string; stdio?: StdioOptions } = {},
): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', TSX_LOADER, path.join(REPO_ROOT, 'src', `${entry}.ts`)],
    {
      cwd: options.cwd ?? REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: options.stdio ?? 'ignore',
    },
  );
}
