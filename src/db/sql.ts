import { Column, getTableColumns, getTableName, is, sql, type Table } from 'drizzle-orm';

/**
 * Names for SQL written by hand, taken from the Drizzle schema so that renaming a table or a
 * column there changes (or fails to compile) every statement that uses it.
 *
 * In a drizzle `sql` template, interpolate a table (`${transactions}`) or a column
 * (`${transactions.userId}`, rendered table-qualified) directly; use `bare(column)` where SQL
 * wants the column unqualified: insert column lists, `excluded.`, an alias's column. In the text
 * of a prepared `Statement`, which is a plain string, use `ident(tableOrColumn)`.
 */

/** A column's name alone, as an identifier in a drizzle `sql` template. */
export const bare = (column: Column) => sql.identifier(column.name);

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
