import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type Db } from '../../src/db/client.js';
import {
  createTestDatabase,
  adminQuery,
  TEST_DATABASE_URL,
  withDatabase,
  type TestDatabase,
} from '../helpers/app.js';

/**
 * Citus's rules for a schema distributed by user_id, checked against the catalog of a freshly
 * migrated database (Citus itself cannot be installed here; see docs/scaling.md):
 * - every primary key and unique index of a distributed table includes the distribution column;
 * - a foreign key from a distributed table points at a reference table, or at another distributed
 *   table with user_id → user_id in both column lists (co-located);
 * - nothing else references a distributed table (a reference or local table cannot).
 */
const DISTRIBUTED = [
  'transactions',
  'user_stats',
  'user_daily_stats',
  'events',
  'deliveries',
  'delivery_attempts',
];
const REFERENCE = ['webhooks', 'api_keys', 'event_consumers'];
const DISTRIBUTION_COLUMN = 'user_id';

async function citusViolations(
  db: Db,
  distributed: readonly string[],
  reference: readonly string[],
): Promise<string[]> {
  const violations: string[] = [];
  const tableList = sql.join(
    distributed.map((name) => sql`${name}`),
    sql`, `,
  );

  const columns = await queryRows<{ table_name: string }>(
    db,
    sql`select c.relname as table_name
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
        join pg_attribute a on a.attrelid = c.oid and a.attname = ${DISTRIBUTION_COLUMN}
          and not a.attisdropped and a.attnotnull
        where c.relkind in ('r', 'p') and c.relname in (${tableList})`,
  );
  const withColumn = new Set(columns.map((row) => row.table_name));
  for (const table of distributed) {
    if (!withColumn.has(table)) {
      violations.push(`${table}: no NOT NULL ${DISTRIBUTION_COLUMN} column (or no such table)`);
    }
  }

  // Primary keys, unique constraints and unique indexes (partial ones too): an expression column
  // (attnum 0) is not the distribution column, so it never satisfies the rule.
  const uniques = await queryRows<{ table_name: string; index_name: string; columns: string[] }>(
    db,
    sql`select c.relname::text as table_name, ic.relname::text as index_name,
          array(select coalesce(a.attname::text, '(expression)')
                from unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
                left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                order by k.ord) as columns
        from pg_index i
        join pg_class c on c.oid = i.indrelid
        join pg_class ic on ic.oid = i.indexrelid
        join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
        where (i.indisunique or i.indisprimary) and c.relname in (${tableList})
        order by 1, 2`,
  );
  for (const unique of uniques) {
    if (!Array.isArray(unique.columns))
      throw new Error(`columns of ${unique.index_name} not an array`);
    if (!unique.columns.includes(DISTRIBUTION_COLUMN)) {
      violations.push(
        `${unique.table_name}: unique index ${unique.index_name} (${unique.columns.join(', ')}) lacks ${DISTRIBUTION_COLUMN}`,
      );
    }
  }

  const foreignKeys = await queryRows<{
    name: string;
    from_table: string;
    to_table: string;
    from_columns: string[];
    to_columns: string[];
  }>(
    db,
    sql`select con.conname::text as name, src.relname::text as from_table, dst.relname::text as to_table,
          array(select a.attname::text from unnest(con.conkey) with ordinality as k(attnum, ord)
                join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
                order by k.ord) as from_columns,
          array(select a.attname::text from unnest(con.confkey) with ordinality as k(attnum, ord)
                join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum
                order by k.ord) as to_columns
        from pg_constraint con
        join pg_class src on src.oid = con.conrelid
        join pg_class dst on dst.oid = con.confrelid
        join pg_namespace n on n.oid = src.relnamespace and n.nspname = current_schema()
        where con.contype = 'f' and (src.relname in (${tableList}) or dst.relname in (${tableList}))
        order by 1`,
  );
  for (const fk of foreignKeys) {
    const fromDistributed = distributed.includes(fk.from_table);
    const toDistributed = distributed.includes(fk.to_table);
    const label = `${fk.from_table}(${fk.from_columns.join(', ')}) → ${fk.to_table}(${fk.to_columns.join(', ')}) [${fk.name}]`;
    if (!fromDistributed) {
      violations.push(`${label}: a table that is not distributed references a distributed one`);
    } else if (toDistributed) {
      const at = fk.from_columns.indexOf(DISTRIBUTION_COLUMN);
      if (at < 0 || fk.to_columns[at] !== DISTRIBUTION_COLUMN) {
        violations.push(
          `${label}: not co-located (${DISTRIBUTION_COLUMN} → ${DISTRIBUTION_COLUMN} missing)`,
        );
      }
    } else if (!reference.includes(fk.to_table)) {
      violations.push(`${label}: points at neither a reference table nor a co-located one`);
    }
  }
  return violations;
}

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await database?.drop();
});

describe('schema distributable by user_id (Citus rules, read from the catalog)', () => {
  it('the six tables that grow with users break no rule on a freshly migrated database', async () => {
    expect(await citusViolations(database.handle.db, DISTRIBUTED, REFERENCE)).toEqual([]);
  });

  it('the reference tables exist with a primary key', async () => {
    const rows = await queryRows<{ table_name: string }>(
      database.handle.db,
      sql`select c.relname as table_name from pg_index i join pg_class c on c.oid = i.indrelid
          where i.indisprimary and c.relname in (${sql.join(
            REFERENCE.map((name) => sql`${name}`),
            sql`, `,
          )})`,
    );
    expect(rows.map((row) => row.table_name).sort()).toEqual([...REFERENCE].sort());
  });

  it('the check reports each kind of broken rule (on tables made only for this test)', async () => {
    const db = database.handle.db;
    await db.execute(sql`create table citus_probe_parent (
      user_id text not null, id uuid not null, code text, primary key (user_id, id))`);
    await db.execute(
      sql`create unique index citus_probe_parent_code_idx on citus_probe_parent (code)`,
    );
    await db.execute(sql`create table citus_probe_child (
      id bigint primary key, user_id text not null, owner_id text, parent_id uuid not null,
      webhook_id uuid references webhooks (id),
      transaction_id uuid,
      foreign key (user_id, parent_id) references citus_probe_parent (user_id, id))`);
    await db.execute(sql`alter table citus_probe_child
      add constraint citus_probe_child_wrong_fk foreign key (owner_id, parent_id)
      references citus_probe_parent (user_id, id)`);
    await db.execute(sql`create unique index citus_probe_parent_id_idx on citus_probe_parent (id)`);
    await db.execute(sql`alter table citus_probe_child
      add constraint citus_probe_child_lone_fk foreign key (parent_id)
      references citus_probe_parent (id)`);
    await db.execute(sql`create table citus_probe_local (id uuid primary key, code text unique)`);
    await db.execute(sql`alter table citus_probe_child
      add constraint citus_probe_child_local_fk foreign key (transaction_id)
      references citus_probe_local (id)`);
    await db.execute(sql`create table citus_probe_inbound (
      user_id text, parent_id uuid,
      foreign key (user_id, parent_id) references citus_probe_parent (user_id, id))`);
    try {
      const violations = await citusViolations(
        db,
        ['citus_probe_parent', 'citus_probe_child', 'citus_probe_missing'],
        REFERENCE,
      );
      const has = (fragment: string) => violations.some((line) => line.includes(fragment));
      expect(has('citus_probe_missing: no NOT NULL user_id')).toBe(true);
      expect(has('unique index citus_probe_parent_code_idx (code) lacks user_id')).toBe(true);
      expect(has('unique index citus_probe_child_pkey (id) lacks user_id')).toBe(true);
      expect(has('[citus_probe_child_wrong_fk]: not co-located')).toBe(true);
      expect(has('unique index citus_probe_parent_id_idx (id) lacks user_id')).toBe(true);
      expect(has('[citus_probe_child_lone_fk]: not co-located')).toBe(true);
      expect(has('[citus_probe_child_local_fk]: points at neither')).toBe(true);
      expect(has('citus_probe_inbound(user_id, parent_id) → citus_probe_parent')).toBe(true);
      // The rules that hold are not reported: the co-located key and the reference table.
      expect(has('citus_probe_parent_pkey')).toBe(false);
      expect(has('→ webhooks')).toBe(false);
      expect(violations).toHaveLength(8);
    } finally {
      await db.execute(
        sql`drop table citus_probe_inbound, citus_probe_child, citus_probe_local, citus_probe_parent`,
      );
    }
  });
});

/** A bare database (PGlite, or a new one on TEST_DATABASE_URL) that migration files run on by hand. */
async function bareDatabase(): Promise<{
  exec(text: string): Promise<void>;
  rows<T>(text: string): Promise<T[]>;
  close(): Promise<void>;
}> {
  if (!TEST_DATABASE_URL) {
    const lite = await PGlite.create();
    return {
      exec: async (text) => void (await lite.exec(text)),
      rows: async <T>(text: string) => (await lite.query<T>(text)).rows,
      close: () => lite.close(),
    };
  }
  const name = `fido_citus_${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const client = new pg.Client({ connectionString: withDatabase(TEST_DATABASE_URL, name) });
  await client.connect();
  return {
    exec: async (text) => void (await client.query(text)),
    rows: async <T>(text: string) => (await client.query(text)).rows as T[],
    async close() {
      await client.end();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

describe('the migration to a distributable schema', () => {
  it('upgrades a database with deliveries and attempts in place, backfilling user_id', async () => {
    const journal = JSON.parse(await readFile('drizzle/meta/_journal.json', 'utf8')) as {
      entries: { tag: string }[];
    };
    const tags = journal.entries.map((entry) => entry.tag);
    const target = tags.indexOf('0005_citus_ready');
    expect(target).toBeGreaterThan(0);
    const file = (tag: string) => readFile(`drizzle/${tag}.sql`, 'utf8');
    const db = await bareDatabase();
    try {
      for (const tag of tags.slice(0, target)) await db.exec(await file(tag));
      await db.exec(`
        insert into webhooks (id, url, secret_ciphertext)
          values ('00000000-0000-7000-8000-000000000001', 'https://example.com/hook', 'x');
        insert into deliveries (id, consumer, webhook_id, event_id, event_type, user_id, retry_until)
          values ('00000000-0000-7000-8000-0000000000a1', 'webhook:1',
                  '00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000e1',
                  'transaction.created', 'alice', now()),
                 ('00000000-0000-7000-8000-0000000000a2', 'handler:audit', null,
                  '00000000-0000-7000-8000-0000000000e2', 'transaction.created', 'bob', now());
        insert into delivery_attempts (delivery_id, latency_ms)
          values ('00000000-0000-7000-8000-0000000000a1', 5),
                 ('00000000-0000-7000-8000-0000000000a1', 6),
                 ('00000000-0000-7000-8000-0000000000a2', 7);`);
      await db.exec(`begin; ${await file(tags[target]!)}; commit;`);
      const attempts = await db.rows<{ user_id: string; latency_ms: number }>(
        'select user_id, latency_ms from delivery_attempts order by id',
      );
      expect(attempts).toEqual([
        { user_id: 'alice', latency_ms: 5 },
        { user_id: 'alice', latency_ms: 6 },
        { user_id: 'bob', latency_ms: 7 },
      ]);
      // The new co-located foreign key still cascades, and a mismatched user is refused.
      await db.exec(`delete from deliveries where user_id = 'alice'`);
      const left = await db.rows<{ n: number }>('select count(*)::int as n from delivery_attempts');
      expect(left).toEqual([{ n: 1 }]);
      await expect(
        db.exec(`insert into delivery_attempts (user_id, delivery_id, latency_ms)
          values ('alice', '00000000-0000-7000-8000-0000000000a2', 1)`),
      ).rejects.toThrow(/foreign key/);
    } finally {
      await db.close();
    }
  }, 60_000);
});
