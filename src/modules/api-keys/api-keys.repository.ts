import { and, asc, eq, gt, isNull, or, sql } from 'drizzle-orm';
import { apiKeys } from '../../db/schema/index.js';
import type { Db } from '../../db/client.js';

export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type NewApiKeyRow = typeof apiKeys.$inferInsert;

export async function insertApiKey(db: Db, row: NewApiKeyRow): Promise<ApiKeyRow> {
  const [saved] = await db.insert(apiKeys).values(row).returning();
  if (!saved) throw new Error('insert returned no row');
  return saved;
}

export async function findApiKey(db: Db, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
  return row;
}

/** Keys oldest first; `after` is the id of the last key of the previous page. */
export async function listApiKeys(
  db: Db,
  after: string | undefined,
  limit: number,
): Promise<ApiKeyRow[]> {
  const query = db.select().from(apiKeys);
  const positionOf = (id: string) =>
    db
      .select({ createdAt: apiKeys.createdAt, id: apiKeys.id })
      .from(apiKeys)
      .where(eq(apiKeys.id, id));
  const page = after
    ? query.where(sql`(${apiKeys.createdAt}, ${apiKeys.id}) > ${positionOf(after)}`)
    : query;
  return page.orderBy(asc(apiKeys.createdAt), asc(apiKeys.id)).limit(limit);
}

/** Marks a key revoked (once: a second revocation keeps the first time). */
export async function revokeApiKey(db: Db, id: string, at: Date): Promise<ApiKeyRow | undefined> {
  await db
    .update(apiKeys)
    .set({ revokedAt: at })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)));
  return findApiKey(db, id);
}

export async function touchApiKey(db: Db, id: string, at: Date): Promise<void> {
  await db.update(apiKeys).set({ lastUsedAt: at }).where(eq(apiKeys.id, id));
}

/** True when at least one key could authenticate a request now. */
export async function hasUsableApiKey(db: Db, now: Date): Promise<boolean> {
  const rows = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(
      and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))),
    )
    .limit(1);
  return rows.length > 0;
}
