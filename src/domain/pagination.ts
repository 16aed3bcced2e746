/**
 * Rows per page of a transaction history (DESIGN.md 2.4); the PAGE_SIZE_MAX setting may lower the
 * maximum, never raise it. Here, below the modules, because config.ts checks the setting.
 */
export const PAGE_SIZE_DEFAULT = 100;
export const PAGE_SIZE_MAX = 500;

/** Pagination as the v1 envelope carries it beside `data`. */
export interface Pagination {
  limit: number;
  next_cursor: string | null;
  has_more: boolean;
}

/**
 * A keyset page from the rows read for it: `limit + 1` were asked for, and the extra one only says
 * that another page exists. A list's next cursor is the last served row's position when there is
 * more, null at the end. A feed (`feed.after`: the cursor the page was read after) is polled, so
 * its next cursor is never null once a position is known: the last served row's, or on an empty
 * page the one it was read after.
 */
export function keysetPage<R>(
  rows: readonly R[],
  limit: number,
  cursorOf: (row: R) => string,
  feed?: { after: string | undefined },
): { items: R[]; pagination: Pagination } {
  const hasMore = rows.length > limit;
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  let next: string | null = null;
  if (feed) next = last === undefined ? (feed.after ?? null) : cursorOf(last);
  else if (hasMore && last !== undefined) next = cursorOf(last);
  return { items, pagination: { limit, next_cursor: next, has_more: hasMore } };
}
