/**
 * Rows per page of a transaction history (DESIGN.md 2.4); the PAGE_SIZE_MAX setting may lower the
 * maximum, never raise it. Here, below the modules, because config.ts checks the setting.
 */
export const PAGE_SIZE_DEFAULT = 100;
export const PAGE_SIZE_MAX = 500;
