import { eq, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { jobState } from './schema/index.js';
import { bare } from './sql.js';

/** A named value background work keeps between runs (`job_state`), or undefined if never kept. */
export async function readJobState(db: Db, name: string): Promise<string | undefined> {
  const [row] = await db
    .select({ value: jobState.value })
    .from(jobState)
    .where(eq(jobState.name, name));
  return row?.value;
}

export async function writeJobState(db: Db, name: string, value: string): Promise<void> {
  await db
    .insert(jobState)
    .values({ name, value, updatedAt: sql`now()` })
    .onConflictDoUpdate({
      target: jobState.name,
      set: { value, updatedAt: sql`excluded.${bare(jobState.updatedAt)}` },
    });
}
