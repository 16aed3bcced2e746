import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { heapGrowingFlag } from '../../src/platform/heap.js';
import { finished, REPO_ROOT, TSX_LOADER } from '../helpers/entry.js';

/** The largest heap (MiB) of a process that applies `percent` and then churns (the fixture). */
async function largestHeapMb(percent: number): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      TSX_LOADER,
      path.join(REPO_ROOT, 'test', 'fixtures', 'heap-churn.ts'),
      `${percent}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const { code, stdout, stderr } = await finished(child);
  expect(code, stderr).toBe(0);
  return Number(stdout.split(' ')[0]);
}

describe('how the server grows its heap', () => {
  it('sets V8’s growing factor unless it is 0 or the operator gave one', () => {
    expect(heapGrowingFlag({ percent: 50, execArgv: [] })).toBe('--heap-growing-percent=50');
    expect(heapGrowingFlag({ percent: 50, execArgv: ['--enable-source-maps'] })).toBe(
      '--heap-growing-percent=50',
    );
    expect(heapGrowingFlag({ percent: 0, execArgv: [] })).toBeUndefined();
    for (const flag of ['--heap-growing-percent=200', '--heap_growing_percent=200']) {
      expect(heapGrowingFlag({ percent: 50, execArgv: [flag] }), flag).toBeUndefined();
    }
  });

  it('keeps a churning process’s heap, by default, well under what V8 alone lets it reach', async () => {
    // V8 reads the flag at run time: if it ever stopped doing so, both would grow alike.
    const { heapGrowingPercent } = loadConfig({});
    const [own, ours] = await Promise.all([largestHeapMb(0), largestHeapMb(heapGrowingPercent)]);
    expect(ours).toBeLessThan(own * 0.8);
  });
});
