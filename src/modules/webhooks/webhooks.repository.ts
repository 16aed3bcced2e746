import { and, asc, count, desc, eq, getTableColumns, inArray, lt, sql } from 'drizzle-orm';
import {
  deliveries,
  deliveryAttempts,
  webhooks,
  type DeliveryState,
} from '../../db/schema/index.js';
import type { Db } from '../../db/client.js';

export type WebhookRow = typeof webhooks.$inferSelect;
export type NewWebhookRow = typeof webhooks.$inferInsert;
export type DeliveryRow = typeof deliveries.$inferSelect;
export type AttemptRow = typeof deliveryAttempts.$inferSelect;
export type WebhookChanges = Partial<
  Pick<
    WebhookRow,
    | 'url'
    | 'description'
    | 'eventTypes'
    | 'active'
    | 'secretCiphertext'
    | 'previousSecretCiphertext'
    | 'previousSecretExpiresAt'
  >
>;

/**
 * A webhook row from its JSON (`to_json` of the row, column names as keys, as the outbox's claim
 * reads it): the same values `findWebhook` gives.
 */
export function webhookFromJson(json: Record<string, unknown>): WebhookRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(webhooks))) {
    const value = json[column.name] ?? null;
    // As the driver's value would be mapped: timestamps (text in JSON) become dates.
    row[key] = value === null ? null : column.mapFromDriverValue(value);
  }
  return row as WebhookRow;
}

export async function insertWebhook(db: Db, row: NewWebhookRow): Promise<WebhookRow> {
  const [saved] = await db.insert(webhooks).values(row).returning();
  if (!saved) throw new Error('insert returned no row');
  return saved;
}

/** Serialises creations within the caller's transaction, so a count-then-insert limit holds. */
export async function lockWebhookCreation(dbTx: Db): Promise<void> {
  await dbTx.execute(sql`lock table ${webhooks} in share row exclusive mode`);
}

export async function countWebhooks(db: Db): Promise<number> {
  const [row] = await db.select({ n: count() }).from(webhooks);
  return row?.n ?? 0;
}

export async function listWebhooks(db: Db): Promise<WebhookRow[]> {
  return db.select().from(webhooks).orderBy(asc(webhooks.createdAt), asc(webhooks.id));
}

export async function findWebhook(
  db: Db,
  id: string,
  { forUpdate = false }: { forUpdate?: boolean } = {},
): Promise<WebhookRow | undefined> {
  const query = db.select().from(webhooks).where(eq(webhooks.id, id));
  const [row] = forUpdate ? await query.for('update') : await query;
  return row;
}

export async function updateWebhook(
  db: Db,
  id: string,
  changes: WebhookChanges,
): Promise<WebhookRow | undefined> {
  const [saved] = await db
    .update(webhooks)
    .set({ ...changes, updatedAt: sql`now()` })
    .where(eq(webhooks.id, id))
    .returning();
  return saved;
}

/** Deletes the webhook and, by cascade, its deliveries and their attempts. */
export async function deleteWebhook(db: Db, id: string): Promise<boolean> {
  const deleted = await db
    .delete(webhooks)
    .where(eq(webhooks.id, id))
    .returning({ id: webhooks.id });
  return deleted.length > 0;
}

/** A webhook's deliveries, newest first, after the `before` position. */
export async function listDeliveries(
  db: Db,
  webhookId: string,
  options: { state?: DeliveryState | undefined; before?: bigint | undefined; limit: number },
): Promise<DeliveryRow[]> {
  const conditions = [eq(deliveries.webhookId, webhookId)];
  if (options.state) conditions.push(eq(deliveries.state, options.state));
  if (options.before !== undefined) conditions.push(lt(deliveries.position, options.before));
  return db
    .select()
    .from(deliveries)
    .where(and(...conditions))
    .orderBy(desc(deliveries.position))
    .limit(options.limit);
}

export async function findDelivery(
  db: Db,
  webhookId: string,
  deliveryId: string,
): Promise<DeliveryRow | undefined> {
  const [row] = await db
    .select()
    .from(deliveries)
    .where(and(eq(deliveries.id, deliveryId), eq(deliveries.webhookId, webhookId)));
  return row;
}

/** The attempts of each delivery, oldest first. */
export async function attemptsOf(
  db: Db,
  deliveryIds: readonly string[],
): Promise<Map<string, AttemptRow[]>> {
  const byDelivery = new Map<string, AttemptRow[]>(deliveryIds.map((id) => [id, []]));
  if (deliveryIds.length === 0) return byDelivery;
  const rows = await db
    .select()
    .from(deliveryAttempts)
    .where(inArray(deliveryAttempts.deliveryId, [...deliveryIds]))
    .orderBy(asc(deliveryAttempts.id));
  for (const row of rows) byDelivery.get(row.deliveryId)?.push(row);
  return byDelivery;
}
