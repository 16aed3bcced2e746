import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { is, Table } from 'drizzle-orm';
import * as schema from '../../src/db/schema/index.js';
import { describe, expect, it } from 'vitest';

/*
 * SQL only in repositories (docs/architecture.md): eslint.config.js forbids drizzle-orm values,
 * the statement runners, `.execute(…)` / `.query(…)` with SQL text, schema tables and the query
 * builder on a database handle outside `*.repository.ts` and src/db/. These show the rule refuses what it should and lets repositories be, and scan every
 * file it covers for SQL text it could not see (a statement kept in a plain string).
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const SRC = path.join(ROOT, 'src');
const RULE = 'no-restricted-syntax';

// The project's config; snippets are not in the TypeScript project, so no type information.
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }],
});

/** The SQL-boundary messages ESLint gives `code` as if it were the file at `file` (from the root). */
async function refusals(code: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === RULE).map((m) => m.message);
}

/** True when the rule is on for `file` (an absolute path): the file is not a repository. */
async function ruleCovers(file: string): Promise<boolean> {
  const config = (await eslint.calculateConfigForFile(file)) as {
    rules?: Record<string, unknown[] | undefined>;
  };
  const level = config.rules?.[RULE]?.[0];
  return level === 2 || level === 'error';
}

const VIOLATIONS = `
import { sql } from 'drizzle-orm';
import * as drizzle from 'drizzle-orm';
import { runStatement, type Statement } from '../db/client.js';
import type { Db } from '../db/client.js';
export async function run(db: Db, client: { query(text: string): Promise<unknown> }) {
  await db.execute(sql\`delete from idempotency_keys\`);
  await client.query('select 1');
  await client.query(\`select \${1}\`);
  return [drizzle, runStatement] as const;
}
export type S = Statement;
`;

/** Schema tables and the query builder, with no SQL text or drizzle-orm import in sight. */
const QUERIES = `
import { transactions, events as feed } from '../db/schema/index.js';
import * as schema from '../db/schema/index.js';
import type { Db, DbTx } from '../db/client.js';
export { webhooks } from '../db/schema/index.js';
export async function run(db: Db, dbTx: DbTx, deps: { db: Db }) {
  await db.select().from(transactions);
  await dbTx.insert(feed).values([]);
  await deps.db.update(schema.webhooks).set({});
  await db.query.transactions.findMany();
}
`;

const ALLOWED = `
import type { SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { EVENT_TYPES, type EventType } from '../db/schema/index.js';
import type { transactions } from '../db/schema/index.js';
export type { webhooks } from '../db/schema/index.js';
export async function run(idempotency: { execute(x: unknown): Promise<void> }, query: SQL, db: Db) {
  await idempotency.execute(query);
  const cache = new Map<string, typeof transactions>();
  cache.delete('key');
  const request = { query: { limit: 1 } };
  await db.transaction(async () => request.query.limit);
  return [db, EVENT_TYPES, [] as EventType[]] as const;
}
`;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** A string or template that starts like a SQL statement. */
const SQL_TEXT =
  /(['"`])\s*(select|insert\s+into|update\s+\w+\s+set|delete\s+from|lock\s+table|with\s+\w+\s+as)\s/i;

describe('SQL only in repositories (ESLint)', () => {
  it('refuses drizzle-orm values, statement runners and SQL text outside repositories', async () => {
    const messages = await refusals(VIOLATIONS, 'src/platform/violation.ts');
    // sql, the namespace, runStatement, Statement, the three calls given SQL text, and
    // `db.execute` again as a query builder call on a database handle.
    expect(messages).toHaveLength(8);
    expect(messages.every((m) => m.includes('SQL belongs in a repository'))).toBe(true);
    expect(await refusals(VIOLATIONS, 'src/modules/transactions/violation.ts')).toHaveLength(8);
  });

  it('refuses schema tables and the query builder on a database handle outside repositories', async () => {
    const messages = await refusals(QUERIES, 'src/modules/transactions/transactions.service.ts');
    // The two tables imported, the namespace, the re-export, and the four query builder calls.
    expect(messages).toHaveLength(8);
    expect(messages.every((m) => m.includes('SQL belongs in a repository'))).toBe(true);
    expect(await refusals(QUERIES, 'src/platform/violation.ts')).toHaveLength(8);
  });

  it('lets repositories and src/db/ hold SQL', async () => {
    for (const code of [VIOLATIONS, QUERIES]) {
      expect(await refusals(code, 'src/modules/webhooks/webhooks.repository.ts')).toEqual([]);
      expect(await refusals(code, 'src/db/violation.ts')).toEqual([]);
    }
  });

  it('names every schema table in lower camel case, as the rule assumes', () => {
    // The rule tells a table from the schema's constants (EVENT_TYPES) by its name's first letter.
    const tables = Object.entries(schema).filter(([, value]) => is(value, Table));
    expect(tables.length).toBeGreaterThan(5);
    for (const [name] of tables) expect(name).toMatch(/^[a-z]/);
  });

  it('allows type imports and calls that carry no SQL text', async () => {
    expect(await refusals(ALLOWED, 'src/platform/allowed.ts')).toEqual([]);
  });

  it('covers every non-repository file of src/, and none of them holds SQL text', async () => {
    const files = sourceFiles(SRC);
    const covered: string[] = [];
    for (const file of files) if (await ruleCovers(file)) covered.push(file);
    const relative = (file: string) => path.relative(SRC, file).split(path.sep).join('/');
    const uncovered = files.filter((file) => !covered.includes(file)).map(relative);
    // What the rule leaves alone is exactly the repositories and src/db/.
    expect(uncovered.filter((f) => !/\.repository\.ts$|^db\//.test(f))).toEqual([]);
    const withSql = covered.filter((file) => SQL_TEXT.test(readFileSync(file, 'utf8')));
    expect(withSql.map(relative)).toEqual([]);
  });
});
