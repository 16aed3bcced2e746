/*
 * Limits of the analytics module, each named with its unit.
 */

/** Events read per run to find recently written users: bounded, the rest wait for the next run. */
export const EVENTS_PER_USER_BATCH = 10;
