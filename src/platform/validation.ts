import { Ajv, type ErrorObject, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { Static, TSchema } from 'typebox';
import type { ValidationIssue } from './errors.js';

// ajv-formats is CommonJS with a default export; under NodeNext its namespace arrives here.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const shared: Options = {
  // Every problem at once: a client fixing a form wants them all. Bodies are size-limited.
  allErrors: true,
  useDefaults: true,
  // Gives each error its schema, where `x-error-message` explains a pattern in words.
  verbose: true,
  strict: false,
};

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({ ...shared, ...options });
  addFormats(ajv);
  return ajv;
}

/**
 * Bodies are validated without type coercion (a boolean must never become the amount 1); the
 * query string and path are text, so there numbers are coerced from their digits.
 */
const bodyAjv = makeAjv({ coerceTypes: false });
const textAjv = makeAjv({ coerceTypes: 'array' });

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : textAjv;
  return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
};

/**
 * Checks a value exactly as a route checks its body (the same Ajv, the same options, defaults
 * filled in), for callers outside HTTP: the CLI then accepts and refuses what the API does.
 * Issues are located as a 422's `detail` would locate them (`["body", …]`).
 */
export function bodyValidator<S extends TSchema>(
  schema: S,
): (value: unknown) => { ok: true; value: Static<S> } | { ok: false; issues: ValidationIssue[] } {
  const validate = bodyAjv.compile(schema as object);
  return (value) => {
    if (validate(value)) return { ok: true, value: value as Static<S> };
    return { ok: false, issues: toValidationIssues(validate.errors ?? [], 'body') };
  };
}

/**
 * Ajv's own errors for a value checked exactly as a route checks its body (the same Ajv, the same
 * options), a union's narrowed to the branch of the value's type as in a 422; empty when the value
 * passes. For callers that word their own refusals from each error's keyword, limit, data and key
 * (the legacy import's report).
 */
export function bodySchemaErrors(schema: TSchema): (value: unknown) => ErrorObject[] {
  const validate = bodyAjv.compile(schema);
  return (value) => (validate(value) ? [] : explainUnions(validate.errors ?? []));
}

const HTTP_PART_LOC: Record<string, string> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

/** Turns Ajv's errors into FastAPI-shaped `detail` entries that name the offending field. */
export function toValidationIssues(
  errors: readonly (FastifySchemaValidationError | ErrorObject)[],
  context: string | undefined,
): ValidationIssue[] {
  const part = HTTP_PART_LOC[context ?? 'body'] ?? 'body';
  const seen = new Set<string>();
  const issues: ValidationIssue[] = [];
  for (const error of explainUnions(errors as readonly ErrorObject[])) {
    const loc: (string | number)[] = [part, ...pathSegments(error.instancePath)];
    const params = error.params as Record<string, unknown>;
    if (error.keyword === 'required' && typeof params.missingProperty === 'string') {
      loc.push(params.missingProperty);
    }
    const issue = describe(error);
    const dedupeKey = `${loc.join('\u0000')}|${issue.type}`;
    if (seen.has(dedupeKey)) continue;
    seen.add(dedupeKey);
    issues.push({ loc, ...issue });
  }
  return issues;
}

/**
 * A failed anyOf reports every branch. When the value has the type of exactly one branch (a
 * too-long string where "string or null" is allowed), that branch's complaint is the useful one;
 * otherwise the anyOf's own message (e.g. "a number or a decimal string") says it best.
 */
function explainUnions(errors: readonly ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  if (unions.length === 0) return [...errors];
  const result = errors.filter((e) => !unions.some((u) => isBranchError(e, u)));
  for (const union of unions) {
    const branches = new Map<string, ErrorObject[]>();
    for (const error of errors) {
      if (!isBranchError(error, union)) continue;
      const branch = error.schemaPath.slice(union.schemaPath.length + 1).split('/')[0] ?? '';
      branches.set(branch, [...(branches.get(branch) ?? []), error]);
    }
    const typeMatched = [...branches.values()].filter(
      (list) => !list.some((e) => e.keyword === 'type' && e.instancePath === union.instancePath),
    );
    const [only] = typeMatched;
    if (typeMatched.length === 1 && only) {
      result.splice(result.indexOf(union), 1, ...only);
    }
  }
  return result;
}

function isBranchError(error: ErrorObject, union: ErrorObject): boolean {
  return error !== union && error.schemaPath.startsWith(`${union.schemaPath}/`);
}

/** The keys of an error's JSON pointer (`/metadata/a~1b` → metadata, a/b), indices as numbers. */
export function pathSegments(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a valid string',
  number: 'a valid number',
  integer: 'a valid integer',
  boolean: 'a valid boolean',
  object: 'a valid object',
  array: 'a valid list',
  null: 'null',
};

function describe(error: ErrorObject): { msg: string; type: string } {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { msg: 'Field required', type: 'missing' };
    case 'type': {
      const types = String(params.type).split(',');
      const names = types.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
      return { msg: `Input should be ${names}`, type: `${types[0]}_type` };
    }
    case 'minLength':
      return {
        msg: `String should have at least ${String(params.limit)} character${params.limit === 1 ? '' : 's'}`,
        type: 'string_too_short',
      };
    case 'maxLength':
      return {
        msg: `String should have at most ${String(params.limit)} characters`,
        type: 'string_too_long',
      };
    case 'pattern':
      return { msg: patternMessage(error), type: 'string_pattern_mismatch' };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map((v) => `'${String(v)}'`);
      return { msg: `Input should be ${allowed.join(' or ')}`, type: 'enum' };
    }
    case 'const':
      return { msg: `Input should be '${String(params.allowedValue)}'`, type: 'literal_error' };
    case 'minimum':
      return {
        msg: `Input should be greater than or equal to ${String(params.limit)}`,
        type: 'greater_than_equal',
      };
    case 'exclusiveMinimum':
      return {
        msg: `Input should be greater than ${String(params.limit)}`,
        type: 'greater_than',
      };
    case 'maximum':
      return {
        msg: `Input should be less than or equal to ${String(params.limit)}`,
        type: 'less_than_equal',
      };
    case 'maxProperties':
      return {
        msg: `Object should have at most ${String(params.limit)} keys`,
        type: 'too_long',
      };
    case 'minProperties':
      return {
        msg: `Object should have at least ${String(params.limit)} key${params.limit === 1 ? '' : 's'}`,
        type: 'too_short',
      };
    case 'propertyNames':
      return { msg: 'Object key is not allowed', type: 'key_error' };
    case 'anyOf':
      return { msg: anyOfMessage(error), type: 'union_type' };
    case 'format':
      return { msg: `Input should be a valid ${String(params.format)}`, type: 'format' };
    default:
      return { msg: error.message ?? 'Invalid input', type: error.keyword };
  }
}

/** What a schema says its rule means (`x-error-message`), for a pattern or a union it failed. */
export function describedRule(error: ErrorObject): string | undefined {
  const described = (error.parentSchema as { 'x-error-message'?: unknown } | undefined)?.[
    'x-error-message'
  ];
  return typeof described === 'string' ? described : undefined;
}

function patternMessage(error: ErrorObject): string {
  return (
    describedRule(error) ??
    `String should match pattern '${String((error.params as { pattern?: unknown }).pattern)}'`
  );
}

function anyOfMessage(error: ErrorObject): string {
  return describedRule(error) ?? 'Input does not match any allowed type';
}
