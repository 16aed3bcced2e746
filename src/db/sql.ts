import { Column, getTableColumns, getTableName, is, sql, type SQL, type Table } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';

/**
 * Names for SQL written by hand, taken from the Drizzle schema so that renaming a table or a
 * column there changes (or fails to compile) every statement that uses it.
 *
 * In a drizzle `sql` template, interpolate a table (`${transactions}`) or a column
 * (`${transactions.userId}`, rendered table-qualified) directly; use `bare(column)` where SQL
 * wants the column unqualified: insert column lists, `excluded.`, an alias's column. In the text
 * of a prepared `Statement`, which is a plain string, use `ident(tableOrColumn)`, or write the
 * statement as a template and render it with `statementText`.
 */

/** A column's name alone, as an identifier in a drizzle `sql` template. */
export const bare = (column: Column) => sql.identifier(column.name);

/** Columns' names alone, comma-separated: an insert's or a `returning`'s column list. */
export const columnList = (...columns: Column[]) =>
  sql.join(
    columns.map((column) => bare(column)),
    sql`, `,
  );

/** The quoted name of a table or of a column (unqualified), for statement text. */
export function ident(of: Table | Column): string {
  const name = is(of, Column) ? of.name : getTableName(of);
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Every column of `table` as `ident(column)`, by its schema key: the names for a `Statement`'s
 * text (`${c.userId}`), so a rename there is a rename here.
 */
export function idents<T extends Table>(
  table: T,
): Record<keyof T['_']['columns'] & string, string> {
  const columns: Record<string, Column> = getTableColumns(table);
  return Object.fromEntries(
    Object.entries(columns).map(([key, column]) => [key, ident(column)]),
  ) as Record<keyof T['_']['columns'] & string, string>;
}

const dialect = new PgDialect();

/**
 * The text of a prepared `Statement` written as a drizzle `sql` template, so that it can name
 * tables and columns from the schema and share fragments with the templates: its values are
 * `$n` placeholders in the template's text, never interpolated (an interpolated value throws).
 */
export function statementText(query: SQL): string {
  const { sql: text, params } = dialect.sqlToQuery(query);
  if (params.length > 0) {
    throw new Error('a statement takes its values as $n placeholders, not interpolated');
  }
  return text;
}
