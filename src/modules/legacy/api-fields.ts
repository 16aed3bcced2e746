/**
 * The v1 API's schema for each field a client writes, applied to an imported document's fields:
 * the create body's own property schemas (src/modules/transactions), compiled by the app's body
 * validator, so an import refuses exactly what a POST or PUT refuses. No rule is restated here;
 * only the wording is ours: a report line names the field, and the key, count, length or character
 * at fault.
 */
import type { ErrorObject } from 'ajv';
import { textLength } from '../../domain/text.js';
import { bodySchemaErrors, describedRule, pathSegments } from '../../platform/validation.js';
import { CreateTransactionBody } from '../transactions/index.js';

export type ApiField = keyof typeof CreateTransactionBody.properties;

const checks = new Map<ApiField, (value: unknown) => ErrorObject[]>();

function checkOf(field: ApiField): (value: unknown) => ErrorObject[] {
  let check = checks.get(field);
  if (check === undefined) {
    check = bodySchemaErrors(CreateTransactionBody.properties[field]);
    checks.set(field, check);
  }
  return check;
}

/**
 * Why the API's schema refuses `value` as the body's `field` (`metadata: 21 keys, at most 20`), or
 * undefined when it accepts it. The rules the service applies after the schema (a name's length
 * after trimming, an amount's digits, a date's calendar) are its exported functions.
 */
export function apiFieldProblem(field: ApiField, value: unknown): string | undefined {
  const [error] = checkOf(field)(value);
  return error === undefined ? undefined : `${field}: ${describe(error)}`;
}

/** A key or text in a reason: JSON-quoted (control characters escaped), long ones cut. */
function quote(text: string): string {
  const characters = Array.from(text);
  return JSON.stringify(characters.length > 24 ? `${characters.slice(0, 24).join('')}…` : text);
}

/** Where in the field the error is: a key of an object (metadata), or the field itself. */
function placeOf(error: ErrorObject): string {
  if (error.propertyName !== undefined) return `key ${quote(error.propertyName)}: `;
  if (error.keyword === 'propertyNames') return '';
  if (error.instancePath === '') return '';
  const keys = pathSegments(error.instancePath).map(String);
  return `value of ${keys.map(quote).join(' in ')}: `;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

const typeName = (type: unknown) => TYPE_NAMES[String(type)] ?? String(type);

function describe(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const data: unknown = error.data;
  const limit = String(params.limit);
  const problem = (() => {
    switch (error.keyword) {
      case 'type':
        return `not ${String(params.type).split(',').map(typeName).join(' or ')}`;
      case 'anyOf': {
        const branches = (error.schema as { type?: unknown }[] | undefined) ?? [];
        const types = branches.map((branch) => typeName(branch.type));
        return types.length > 0 ? `not ${types.join(' or ')}` : 'not an allowed type';
      }
      case 'enum':
        return `must be ${(params.allowedValues as unknown[]).map(String).join(' or ')} (got ${JSON.stringify(data).slice(0, 40)})`;
      case 'minLength': {
        const length = textLength(String(data));
        return length === 0 ? 'empty' : `${length} characters, at least ${limit}`;
      }
      case 'maxLength':
        return `${textLength(String(data))} characters, at most ${limit}`;
      case 'maxProperties':
      case 'minProperties': {
        const keys = Object.keys(data as object).length;
        return `${keys} keys, at ${error.keyword === 'maxProperties' ? 'most' : 'least'} ${limit}`;
      }
      case 'exclusiveMinimum':
        return `must be greater than ${limit}`;
      case 'minimum':
        return `must be at least ${limit}`;
      case 'maximum':
        return `must be at most ${limit}`;
      case 'pattern':
        return patternProblem(String(data), String(params.pattern), error);
      case 'propertyNames':
        return `key ${quote(String(params.propertyName))} is not allowed`;
      default:
        return error.message ?? 'invalid';
    }
  })();
  return `${placeOf(error)}${problem}`;
}

/** A text rule's pattern (`^[^…]*$`: characters it forbids) names the first forbidden one. */
function patternProblem(text: string, pattern: string, error: ErrorObject): string {
  if (/^\^\[\^.*\]\*\$$/.test(pattern)) {
    const allowed = new RegExp(pattern, 'u');
    for (const character of text) {
      if (!allowed.test(character)) return `contains ${characterName(character)}`;
    }
  }
  return describedRule(error) ?? `does not match ${pattern}`;
}

function characterName(character: string): string {
  const code = `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  if (character === '\u0000') return `NUL (${code})`;
  if (/\p{Cc}/u.test(character)) return `a control character (${code})`;
  if (/\p{Cs}/u.test(character)) return `an unpaired surrogate (${code})`;
  return `${code}, which is not allowed`;
}
