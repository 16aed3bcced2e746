import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { events, transactions, userStats } from '../../db/schema/index.js';

/**
 * The events after `sequence`, oldest first, at most `limit`: what the reconciliation reads to
 * find the users written since its previous run.
 */
export async function eventUsersAfter(
  db: Db,
  sequence: string,
  limit: number,
): Promise<{ sequence: string; userId: string }[]> {
  const rows = await queryRows<{ sequence: string | number; user_id: string }>(
    db,
    sql`select ${events.sequence} as sequence, ${events.userId} as user_id from ${events}
      where ${events.sequence} > ${sequence}::bigint
      order by ${events.sequence} limit ${limit}`,
  );
  return rows.map((row) => ({ sequence: String(row.sequence), userId: row.user_id }));
}

/**
 * The next `limit` user ids after `after`, among users with transactions or with rollups (a
 * rollup without transactions is drift too). Loose index scans: cost grows with users, not rows.
 */
export async function nextUsers(db: Db, after: string, limit: number): Promise<string[]> {
  // One loose index scan over a table's leading user_id column: each step finds the next user.
  const distinctUsers = (name: SQL, table: typeof transactions | typeof userStats) => sql`
    ${name} as (
      (select ${table.userId} as user_id from ${table} where ${table.userId} > ${after}
        order by ${table.userId} limit 1)
      union all
      select (select ${table.userId} from ${table} where ${table.userId} > r.user_id
        order by ${table.userId} limit 1)
      from ${name} r where r.user_id is not null
    )`;
  const rows = await queryRows<{ user_id: string }>(
    db,
    sql`
    with recursive ${distinctUsers(sql`from_rows`, transactions)},
      ${distinctUsers(sql`from_rollups`, userStats)}
    select user_id from (
      (select user_id from from_rows where user_id is not null limit ${limit})
      union
      (select user_id from from_rollups where user_id is not null limit ${limit})
    ) u order by user_id limit ${limit}`,
  );
  return rows.map((r) => r.user_id);
}
