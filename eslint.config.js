// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * Module boundaries (docs/architecture.md, "Code map"). A module (src/modules/<m>/) is reached only
 * through its index.ts; the layers below the modules (domain, platform, db, config) never import
 * a module. test/unit/architecture.test.ts checks the same, and that modules import no cycle.
 */
const throughIndex = {
  regex: String.raw`(^|/)modules/[^/]+/(?!index\.js$)[^/]+$`,
  message: 'Import another module only through its index.js (its public face).',
};
const siblingModuleInternals = {
  regex: String.raw`^\.\./(?!\.\.)[^/]+/(?!index\.js$)[^/]+$`,
  message: 'Import another module only through its index.js (its public face).',
};
const noModules = {
  regex: String.raw`(^|/)(modules|plugins)/|^\.\./(app|services|cli)\.js$`,
  message: 'The layers below the modules (domain, platform, db, config) import no module.',
};
const noUpperLayers = {
  regex: String.raw`(^|/)(modules|plugins|platform|db|jobs)/|(^|/)(config|app|services)\.js$`,
  message: 'The domain layer holds plain value rules: it imports no other layer.',
};

/*
 * SQL only in repositories (docs/architecture.md, "SQL lives in repositories"): `*.repository.ts`
 * files and src/db/ (the client, the schema, the shared platform's repositories). Elsewhere in
 * src/ there is no drizzle-orm value import (no `sql`, `sql.raw`, `SQL`, no query builder
 * operators), no statement runner from db/client, no `.execute(…)` / `.query(…)` given SQL text,
 * no schema table (a value import from db/schema named in lower camel case: tables are, the
 * schema's constants such as EVENT_TYPES are upper case, and the sql-boundary test checks both),
 * and no query builder on a database handle (`db.select(…)`, `dbTx.insert(…)`, `deps.db.query`…,
 * by the names the code gives handles). test/, bench/ and scripts/ are exempt: tests read the
 * catalog and inject faults the API does not expose, and the bench's bulk loader seeds tables
 * directly; none of them is the service. test/unit/sql-boundary.test.ts runs this rule on
 * violating snippets.
 */
const DRIZZLE = String.raw`/^drizzle-orm(\/|$)/`;
const SCHEMA = String.raw`/(^|\/)db\/schema(\/|\.js$|$)/`;
/** What a database handle (or an open transaction) is called: `db`, `dbTx`, `dbq`, `primary`. */
const DB_HANDLE = String.raw`/^(db|dbTx|dbq|tx|primary)$/`;
/** A PgDatabase's query builders and runners, and its relational query API (`db.query.x`). */
const QUERY_BUILDER = String.raw`/^(select|selectDistinct|selectDistinctOn|insert|update|delete|execute|with|\$with|\$count|refreshMaterializedView|query)$/`;
const SQL_OUTSIDE_REPOSITORIES = 'SQL belongs in a repository (*.repository.ts, or src/db/).';
const sqlOnlyInRepositories = [
  {
    selector: `ImportDeclaration[importKind='value'][source.value=${DRIZZLE}] > ImportSpecifier[importKind='value']`,
    message: `Do not import drizzle-orm values here. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: `ImportDeclaration[importKind='value'][source.value=${DRIZZLE}] > :matches(ImportNamespaceSpecifier, ImportDefaultSpecifier)`,
    message: `Do not import drizzle-orm values here. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: String.raw`ImportDeclaration[source.value=/(^|\/)db\/client(\.js)?$/] > ImportSpecifier[imported.name=/^(queryRows|runStatement|Statement)$/]`,
    message: `Statements are run (and written) by repositories. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: `CallExpression[callee.property.name=/^(execute|query)$/][arguments.0.type=/^(TaggedTemplateExpression|TemplateLiteral|Literal)$/]`,
    message: `No SQL text outside repositories. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: `ImportDeclaration[importKind='value'][source.value=${SCHEMA}] > ImportSpecifier[importKind='value'][imported.name=/^[a-z]/]`,
    message: `Schema tables are for queries. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: `ImportDeclaration[importKind='value'][source.value=${SCHEMA}] > :matches(ImportNamespaceSpecifier, ImportDefaultSpecifier)`,
    message: `Schema tables are for queries. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: `:matches(ExportNamedDeclaration[exportKind='value'][source.value=${SCHEMA}] > ExportSpecifier[exportKind='value'][local.name=/^[a-z]/], ExportAllDeclaration[exportKind='value'][source.value=${SCHEMA}])`,
    message: `Schema tables are for queries. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
  {
    selector: `MemberExpression[property.name=${QUERY_BUILDER}]:matches([object.name=${DB_HANDLE}], [object.property.name=${DB_HANDLE}])`,
    message: `No query builder on a database handle outside repositories. ${SQL_OUTSIDE_REPOSITORIES}`,
  },
];

export default tseslint.config(
  {
    // Generated: the typed client's types (npm run client:types).
    ignores: [
      'dist/',
      'node_modules/',
      'data/',
      'coverage/',
      'drizzle/',
      'test/client/fido-api.d.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
      // Fastify plugins and handlers are async by contract, awaiting or not.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-console': 'off',
    },
  },
  { files: ['src/cli.ts'], rules: { 'no-console': 'off' } },
  {
    files: ['src/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [throughIndex] }] },
  },
  {
    files: ['src/modules/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [throughIndex, siblingModuleInternals] }],
    },
  },
  {
    files: ['src/platform/**/*.ts', 'src/db/**/*.ts', 'src/config.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noModules] }] },
  },
  {
    files: ['src/domain/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noUpperLayers] }] },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.repository.ts', 'src/db/**'],
    rules: { 'no-restricted-syntax': ['error', ...sqlOnlyInRepositories] },
  },
  { files: ['*.js', '*.config.ts', 'scripts/**'], ...tseslint.configs.disableTypeChecked },
);
