import v8 from 'node:v8';

/**
 * How the server's heap grows. After each full collection V8 sets the next one's trigger at the
 * live heap times a growing factor that it picks itself, up to 4× when the heap has room (Node
 * gives the old space a quarter of the machine's memory: 4 GiB on a 24 GiB machine). Under load
 * the live heap is ~60 MB, so RSS was mostly garbage not yet collected: 216-316 MB. A fixed factor
 * (V8's `--heap-growing-percent`, HEAP_GROWING_PERCENT here) collects sooner without bounding the
 * heap: a peak still gets all the room Node gives it, where a bound (`--max-old-space-size`)
 * would turn it into a crash, and near a low bound V8 collects far more often (docs/performance.md,
 * Memory, has both measured).
 *
 * V8 reads this flag at every full collection, so the process sets it on itself at start: no
 * restart and no launcher. A `--heap-growing-percent` on the command line is the operator's and
 * wins (Node refuses the flag in NODE_OPTIONS).
 */

/** The operator's own growing flag on the command line. */
const GROWING_FLAG = /^--heap[-_]growing[-_]percent(?:=|$)/;

/** The V8 flag to apply, or none: HEAP_GROWING_PERCENT=0, or the operator gave one. */
export function heapGrowingFlag(options: {
  percent: number;
  execArgv: readonly string[];
}): string | undefined {
  if (options.percent === 0) return undefined;
  if (options.execArgv.some((arg) => GROWING_FLAG.test(arg))) return undefined;
  return `--heap-growing-percent=${options.percent}`;
}

/** Applies HEAP_GROWING_PERCENT to this process (see above). */
export function applyHeapGrowing(percent: number): void {
  const flag = heapGrowingFlag({ percent, execArgv: process.execArgv });
  if (flag) v8.setFlagsFromString(flag);
}
