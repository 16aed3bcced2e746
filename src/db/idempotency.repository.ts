import { and, asc, lte, sql } from 'drizzle-orm';
import { runStatement, type Db, type Statement } from './client.js';
import { idempotencyKeys } from './schema/index.js';
import { ident, idents } from './sql.js';

export type IdempotencyKeyRow = typeof idempotencyKeys.$inferSelect;
/** What a replay needs of a stored key. */
export type StoredIdempotencyKey = Pick<
  IdempotencyKeyRow,
  'requestHash' | 'responseStatus' | 'responseHeaders' | 'responseBody'
>;

const TABLE = ident(idempotencyKeys);
const c = idents(idempotencyKeys);

const LOCK_KEY: Statement = {
  name: 'fido_idempotency_lock',
  text: 'select pg_try_advisory_xact_lock(hashtext($1::text), hashtext($2::text)) as locked',
};

const FIND_KEY: Statement = {
  name: 'fido_idempotency_find',
  text: `select ${c.requestHash}, ${c.responseStatus}, ${c.responseHeaders}, ${c.responseBody}
  from ${TABLE} where ${c.scope} = $1::text and ${c.key} = $2::text and ${c.expiresAt} > $3::timestamptz`,
};

const SAVE_KEY: Statement = {
  name: 'fido_idempotency_save',
  text: `insert into ${TABLE} (${c.scope}, ${c.key}, ${c.requestHash}, ${c.responseStatus},
    ${c.responseHeaders}, ${c.responseBody}, ${c.createdAt}, ${c.expiresAt})
  values ($1::text, $2::text, $3::text, $4::int, $5::jsonb, $6::text, $7::timestamptz,
    $8::timestamptz)
  on conflict (${c.scope}, ${c.key}) do update set ${c.requestHash} = excluded.${c.requestHash},
    ${c.responseStatus} = excluded.${c.responseStatus},
    ${c.responseHeaders} = excluded.${c.responseHeaders},
    ${c.responseBody} = excluded.${c.responseBody}, ${c.createdAt} = excluded.${c.createdAt},
    ${c.expiresAt} = excluded.${c.expiresAt}`,
};

/** The one mapper of an `idempotency_keys` row read by a statement (columns by their SQL names). */
function storedKeyOf(row: Record<string, unknown>): StoredIdempotencyKey {
  return {
    requestHash: row[idempotencyKeys.requestHash.name] as string,
    responseStatus: row[idempotencyKeys.responseStatus.name] as number,
    responseHeaders: row[idempotencyKeys.responseHeaders.name] as Record<string, string>,
    responseBody: row[idempotencyKeys.responseBody.name] as string,
  };
}

/**
 * Takes the (scope, key) advisory lock for the rest of `dbTx`; false when another transaction
 * holds it (never waits).
 */
export async function tryLockIdempotencyKey(
  dbTx: Db,
  scope: string,
  key: string,
): Promise<boolean> {
  const [lock] = await runStatement<{ locked: boolean }>(dbTx, LOCK_KEY, [scope, key]);
  return lock?.locked === true;
}

/** The key's stored response, unless it expired by `now`. */
export async function findIdempotencyKey(
  dbTx: Db,
  scope: string,
  key: string,
  now: Date,
): Promise<StoredIdempotencyKey | undefined> {
  const [row] = await runStatement<Record<string, unknown>>(dbTx, FIND_KEY, [
    scope,
    key,
    now.toISOString(),
  ]);
  return row === undefined ? undefined : storedKeyOf(row);
}

/** Stores (or, over an expired row with the same key, replaces) a key and its response. */
export async function saveIdempotencyKey(dbTx: Db, row: IdempotencyKeyRow): Promise<void> {
  await runStatement(dbTx, SAVE_KEY, [
    row.scope,
    row.key,
    row.requestHash,
    row.responseStatus,
    JSON.stringify(row.responseHeaders),
    row.responseBody,
    row.createdAt.toISOString(),
    row.expiresAt.toISOString(),
  ]);
}

/** Deletes up to `limit` keys expired by `now`, oldest first; returns how many. */
export async function deleteExpiredIdempotencyKeys(
  db: Db,
  now: Date,
  limit: number,
): Promise<number> {
  const expired = db
    .select({ scope: idempotencyKeys.scope, key: idempotencyKeys.key })
    .from(idempotencyKeys)
    .where(lte(idempotencyKeys.expiresAt, now))
    .orderBy(asc(idempotencyKeys.expiresAt))
    .limit(limit);
  const deleted = await db
    .delete(idempotencyKeys)
    // The outer condition is re-checked on rows a concurrent request just stored again: a key
    // renewed meanwhile is not deleted.
    .where(
      and(
        sql`(${idempotencyKeys.scope}, ${idempotencyKeys.key}) in ${expired}`,
        lte(idempotencyKeys.expiresAt, now),
      ),
    )
    .returning({ key: idempotencyKeys.key });
  return deleted.length;
}
