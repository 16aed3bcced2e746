import { describe, expect, it } from 'vitest';
import { createProgress } from '../../src/modules/legacy/index.js';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, write: (text: string) => writes.push(text) };
}

describe('progress display', () => {
  it('redraws one line on a terminal: rows, rows/s, share done and ETA', () => {
    let now = 0;
    const out = sink(true);
    const progress = createProgress(out, 'documents', { now: () => now });
    progress.update(100, 0.01);
    expect(out.writes).toEqual([]); // not before the first interval
    now = 2_000;
    progress.update(20_000, 0.25);
    expect(out.writes).toEqual(['\r\x1b[2Kdocuments 20,000  10,000/s  25.0%  ETA 0:06']);
    now = 2_100;
    progress.update(21_000, 0.26);
    expect(out.writes).toHaveLength(1); // at most every 250 ms
    progress.done();
    expect(out.writes.at(-1)).toBe('\r\x1b[2K');
  });

  it('writes a plain, timestamped line every few seconds when not a terminal', () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const out = sink(false);
    const progress = createProgress(out, 'transactions', { now: () => now });
    now += 1_000;
    progress.update(5, undefined);
    expect(out.writes).toEqual([]);
    now += 5_000;
    progress.update(60_000, undefined);
    expect(out.writes).toEqual(['2026-01-01T00:00:06.000Z transactions 60,000  10,000/s\n']);
    progress.done();
    expect(out.writes).toHaveLength(1);
  });
});
