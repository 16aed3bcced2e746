import { sql } from 'drizzle-orm';
import { queryRows, type Db } from './db.js';

/** A named value background work keeps between runs (`job_state`), or undefined if never kept. */
export async function readJobState(db: Db, name: string): Promise<string | undefined> {
  const [row] = await queryRows<{ value: string }>(
    db,
    sql`select value from job_state where name = ${name}`,
  );
  return row?.value;
}

export async function writeJobState(db: Db, name: string, value: string): Promise<void> {
  await db.execute(sql`insert into job_state (name, value, updated_at) values (${name}, ${value}, now())
    on conflict (name) do update set value = excluded.value, updated_at = excluded.updated_at`);
}
