import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/platform/logging.js';
import {
  createRateLimiter,
  memoryRateLimitStore,
  reservationBlock,
  type RateLimiter,
  type RateLimitStore,
} from '../../src/platform/rate-limit.js';

/*
 * The limiter's quota reservation, on a shared store kept in this process: it counts like the
 * Redis one (a fixed window per key, `amount` at a time) and records how often it was asked, so
 * several limiters on it behave like replicas sharing Redis. The same properties are checked
 * against a real Redis in test/integration/redis/rate-limit-redis.test.ts.
 */

interface SharedStore extends RateLimitStore {
  /** Round trips so far (each `hit`, whatever its amount). */
  calls: number;
  /** Counts reserved so far, all keys together. */
  reserved: number;
}

function sharedStore(): SharedStore {
  const counts = memoryRateLimitStore();
  const store: SharedStore = {
    kind: 'redis',
    calls: 0,
    reserved: 0,
    async hit(key, windowMs, amount = 1) {
      store.calls += 1;
      store.reserved += amount;
      // A round trip: the answer comes back after other requests had a chance to run.
      await new Promise((resolve) => setImmediate(resolve));
      return counts.hit(key, windowMs, amount);
    },
    async close() {},
  };
  return store;
}

const replica = (store: RateLimitStore, windowSeconds = 60): RateLimiter =>
  createRateLimiter({ store, windowSeconds, logger: createLogger('silent') });

afterEach(() => {
  vi.useRealTimers();
});

describe('reservation blocks', () => {
  it('are 1% of max, at least 1 and at most 1,000', () => {
    expect(reservationBlock(1)).toBe(1);
    expect(reservationBlock(199)).toBe(1);
    expect(reservationBlock(300)).toBe(3);
    expect(reservationBlock(1_200)).toBe(12);
    expect(reservationBlock(1_000_000)).toBe(1_000);
  });
});

describe('rate limiter on a shared store', () => {
  it('counts exactly in one process, with a round trip per block, none for refusals', async () => {
    const store = sharedStore();
    const rl = replica(store);
    const max = 1_000;
    for (let i = 1; i <= max; i += 1) {
      expect(await rl.check('a', max)).toMatchObject({ allowed: true, remaining: max - i });
    }
    for (let i = 0; i < 50; i += 1) {
      expect(await rl.check('a', max)).toMatchObject({ allowed: false, remaining: 0 });
    }
    expect(store.calls).toBe(max / reservationBlock(max));
  });

  it('gives concurrent requests of one caller distinct counts, reserving only what they use', async () => {
    const store = sharedStore();
    const rl = replica(store);
    const decisions = await Promise.all(Array.from({ length: 100 }, () => rl.check('a', 1_000)));
    expect(decisions.map((d) => d.remaining).sort((x, y) => y - x)).toEqual(
      Array.from({ length: 100 }, (_, i) => 999 - i),
    );
    // The first request reserves a block; the 99 that queued behind it share the next one.
    expect(store.calls).toBe(2);
    // Nothing left over: the store counted exactly the 100 requests.
    expect(store.reserved).toBe(100);
  });

  it('never lets more than max through across replicas, and strands at most (N - 1) blocks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 500, size: 'max' }),
        fc.boolean(),
        async (max, replicas, picks, concurrent) => {
          const store = sharedStore();
          const limiters = Array.from({ length: replicas }, () => replica(store));
          const send = (pick: number) => limiters[pick % replicas]!.check('caller', max);
          const decisions: { allowed: boolean }[] = [];
          if (concurrent) decisions.push(...(await Promise.all(picks.map(send))));
          else for (const pick of picks) decisions.push(await send(pick));
          const allowed = decisions.filter((d) => d.allowed).length;
          expect(allowed).toBeLessThanOrEqual(Math.min(picks.length, max));
          const stranded = (replicas - 1) * (reservationBlock(max) - 1);
          expect(allowed).toBeGreaterThanOrEqual(Math.min(picks.length, max - stranded));
          if (replicas === 1) expect(allowed).toBe(Math.min(picks.length, max));
          // Each request takes at most one count; each replica holds less than a block unspent.
          expect(store.reserved).toBeLessThanOrEqual(
            picks.length + stranded + reservationBlock(max),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it('drops a block when its window ends, and lets a refused caller through in the next', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = sharedStore();
    const rl = replica(store, 60);
    expect(await rl.check('a', 300)).toMatchObject({ allowed: true, remaining: 299 });
    expect(store.calls).toBe(1);
    vi.setSystemTime(Date.now() + 61_000);
    // A fresh count in a fresh window, not the rest of the old block.
    expect(await rl.check('a', 300)).toMatchObject({ allowed: true, remaining: 299 });
    expect(store.calls).toBe(2);

    const allowed: boolean[] = [];
    for (let i = 0; i < 3; i += 1) allowed.push((await rl.check('b', 2)).allowed);
    expect(allowed).toEqual([true, true, false]);
    vi.setSystemTime(Date.now() + 61_000);
    expect((await rl.check('b', 2)).allowed).toBe(true);
  });

  it('answers the waiters of a failed reservation from memory, not by asking the store in turn', async () => {
    let calls = 0;
    const failing: RateLimitStore = {
      kind: 'redis',
      async hit() {
        calls += 1;
        await new Promise((resolve) => setImmediate(resolve));
        throw new Error('Command timed out');
      },
      async close() {},
    };
    const rl = replica(failing);
    const decisions = await Promise.all(Array.from({ length: 10 }, () => rl.check('a', 5)));
    // One round trip for the ten requests; the limit still holds, counted in this process.
    expect(calls).toBe(1);
    expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
  });
});
