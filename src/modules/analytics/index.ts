/*
 * The analytics module's public face: per-user figures read from rollups, the rollup writes the
 * transactions module makes inside its own database transaction, and the reconciliation that
 * checks rollups against the rows. Other code imports the module only from here.
 */
export { analyticsRoutes } from './analytics.routes.js';
export { createAnalyticsService, type AnalyticsService } from './analytics.service.js';
export {
  reconcileAll,
  reconcileUser,
  runReconciliation,
  type Drift,
  type ReconciliationResult,
} from './reconciliation.js';
export { applyRollups, changesRollups } from './rollups.js';
export {
  contributions,
  CONTRIBUTION_INPUTS,
  lockUsersRollups,
  rollupUpserts,
  ROLLUP_LOCK_CLASS,
  type Contribution,
} from './rollups.repository.js';
