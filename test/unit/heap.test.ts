import { describe, expect, it } from 'vitest';
import { HEAP_SEMI_SPACE_MB, heapArguments } from '../../src/platform/heap.js';

const base = { oldSpaceMb: 192, execArgv: [], nodeOptions: '', memoryMb: 24_576 };

describe('the heap bounds the server gives itself', () => {
  it('bounds the old space and keeps the young generation at its default when nobody did', () => {
    expect(heapArguments(base)).toEqual([
      '--max-old-space-size=192',
      `--max-semi-space-size=${HEAP_SEMI_SPACE_MB}`,
    ]);
  });

  it("leaves the heap to the operator's flags, on the command line or in NODE_OPTIONS", () => {
    for (const flag of [
      '--max-old-space-size=512',
      '--max_old_space_size=512',
      '--max-semi-space-size=32',
      '--max-heap-size=300',
    ]) {
      expect(heapArguments({ ...base, execArgv: ['--enable-source-maps', flag] }), flag).toEqual(
        [],
      );
      expect(heapArguments({ ...base, nodeOptions: `--enable-source-maps ${flag}` })).toEqual([]);
    }
    expect(heapArguments({ ...base, nodeOptions: '--enable-source-maps' })).not.toEqual([]);
  });

  it("adds nothing when turned off, or when Node's own bound (a quarter of the memory) is lower", () => {
    expect(heapArguments({ ...base, oldSpaceMb: 0 })).toEqual([]);
    // A 512 MiB container: Node gives the old space 128 MiB, less than 192.
    expect(heapArguments({ ...base, memoryMb: 512 })).toEqual([]);
    expect(heapArguments({ ...base, memoryMb: 1_024 })).not.toEqual([]);
  });
});
