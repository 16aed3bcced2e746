import { describe, expect, it } from 'vitest';
import { memoryPositionStore, parseLsn } from '../../src/platform/read-replicas.js';
import { expectPositionSemantics } from '../helpers/positions.js';

describe('WAL positions', () => {
  it('reads pg_lsn text as a number that orders as PostgreSQL orders positions', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    // Compared as numbers, not as text: 0/A0 comes before 0/9F0 (as text it would come after).
    expect(parseLsn('0/A0') < parseLsn('0/9F0')).toBe(true);
    expect(parseLsn('1/0') > parseLsn('0/FFFFFFFF')).toBe(true);
    expect(() => parseLsn('not a position')).toThrow();
  });

  it("raises a user's position and never lowers it; a writer never creates a missing one", async () => {
    await expectPositionSemantics(memoryPositionStore(100));
  });
});
