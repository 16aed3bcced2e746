// Run before `npm start`, `npm run worker` and the CLI: builds dist/ when it is missing or older
// than a file under src/ (a fresh clone, a pull, an edit), and otherwise costs one directory walk.
// Messages go to stderr, so `$(npm run --silent cli -- generate-key)` captures only the key.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { buildDist, STAMP } from './build.mjs';

const srcDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');

async function newestSourceMs() {
  let newest = 0;
  for (const file of await readdir(srcDir, { recursive: true })) {
    newest = Math.max(newest, (await stat(path.join(srcDir, file))).mtimeMs);
  }
  return newest;
}

const builtMs = await stat(STAMP).then(
  (s) => s.mtimeMs,
  () => undefined,
);
if (builtMs === undefined || (await newestSourceMs()) > builtMs) {
  process.stderr.write(
    builtMs === undefined
      ? 'building dist/ (first run)...\n'
      : 'building dist/ (sources changed)...\n',
  );
  const { files, ms } = await buildDist();
  process.stderr.write(`built dist/ from ${files} source files in ${ms} ms\n`);
}
