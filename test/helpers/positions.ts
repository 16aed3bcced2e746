import { expect } from 'vitest';
import type { PositionStore } from '../../src/platform/read-replicas.js';

/** What every position store does (in process, and in Redis). */
export async function expectPositionSemantics(store: PositionStore): Promise<void> {
  // A writer's position covers its own commit only: an entry lost before it stays missing, so
  // the next read takes a floor from the primary.
  await store.raise('u', 50n, true);
  expect(await store.get('u')).toBeUndefined();
  // A reader's floor creates it.
  await store.raise('u', 40n, false);
  expect(await store.get('u')).toBe(40n);
  await store.raise('u', 90n, true);
  await store.raise('u', 60n, true);
  expect(await store.get('u')).toBe(90n);
  await store.forget('u');
  expect(await store.get('u')).toBeUndefined();
  // Positions past 2^53 stay exact.
  await store.raise('v', (0xffffn << 48n) + 1n, false);
  await store.raise('v', 0xffffn << 48n, true);
  expect(await store.get('v')).toBe((0xffffn << 48n) + 1n);
}
