import type { Db } from '../../db/client.js';
import {
  addContributions,
  CONTRIBUTION_FIELDS,
  deleteEmptyRollups,
  lockUserRollups,
  type Contribution,
} from './rollups.repository.js';

/**
 * Moves the rollups by what `removed` contributed and what `added` contributes, inside the caller's
 * database transaction, under the user's shared rollup lock. Rows are locked in key order (user,
 * currency, day), so concurrent writers never deadlock; rows left with no transactions are deleted.
 */
export async function applyRollups(
  dbTx: Db,
  change: { removed?: Contribution; added?: Contribution },
  timeZone: string,
): Promise<void> {
  const changes = [
    ...(change.removed ? [{ transaction: change.removed, sign: -1 as const }] : []),
    ...(change.added ? [{ transaction: change.added, sign: 1 as const }] : []),
  ];
  const first = changes[0];
  if (!first) return;
  await lockUserRollups(dbTx, first.transaction.userId, 'shared');
  await deleteEmptyRollups(dbTx, await addContributions(dbTx, changes, timeZone));
}

/** Whether moving from `before` to `after` changes what the rollups hold. */
export function changesRollups(before: Contribution, after: Contribution): boolean {
  return CONTRIBUTION_FIELDS.some((field) => {
    const [a, b] = [before[field], after[field]];
    return a instanceof Date && b instanceof Date ? a.getTime() !== b.getTime() : a !== b;
  });
}
