// Builds dist/ from src/: each TypeScript file transpiled to one JavaScript file (esbuild, well
// under a second), not type-checked: `npm run typecheck` and CI do that. tsc took 12-40 s of the
// first `npm start`; this is why a fresh clone answers within seconds.
import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'src');
const outDir = path.join(root, 'dist');
export const STAMP = path.join(outDir, '.build-stamp');

export async function buildDist() {
  const started = Date.now();
  const entryPoints = (await readdir(srcDir, { recursive: true }))
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => path.join(srcDir, file));
  // A source removed since the last build must not leave a module behind.
  await rm(outDir, { recursive: true, force: true });
  await build({
    entryPoints,
    outdir: outDir,
    outbase: srcDir,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
  });
  await writeFile(STAMP, `${new Date().toISOString()}\n`);
  return { files: entryPoints.length, ms: Date.now() - started };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { files, ms } = await buildDist();
  process.stderr.write(`built dist/ from ${files} source files in ${ms} ms\n`);
}
