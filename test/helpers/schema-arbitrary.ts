import fc from 'fast-check';
import type { Json } from './contract.js';

/**
 * fast-check arbitraries for values a JSON Schema (of the OpenAPI document) accepts: the keywords
 * the document uses (type, enum, const, anyOf, format, pattern, lengths, bounds, properties,
 * additionalProperties). Strings favour the schema's own `examples`, so that a good share of
 * generated requests gets past validation and exercises the operation itself.
 */
export function arbitraryFor(
  schema: Json,
  resolve: (schema: Json) => Json,
  depth = 0,
): fc.Arbitrary<unknown> {
  const s = resolve(schema);
  if ('const' in s) return fc.constant(s.const);
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
  const examples = Array.isArray(s.examples) ? (s.examples as unknown[]) : [];
  const generated = generatedFor(s, resolve, depth);
  return examples.length > 0
    ? fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...examples) },
        { weight: 1, arbitrary: generated },
      )
    : generated;
}

function generatedFor(
  s: Json,
  resolve: (schema: Json) => Json,
  depth: number,
): fc.Arbitrary<unknown> {
  if (Array.isArray(s.anyOf) || Array.isArray(s.oneOf)) {
    const branches = (s.anyOf ?? s.oneOf) as Json[];
    return fc.oneof(...branches.map((branch) => arbitraryFor(branch, resolve, depth)));
  }
  switch (s.type) {
    case 'string':
      return stringFor(s);
    case 'integer': {
      const min = typeof s.minimum === 'number' ? s.minimum : -1_000;
      const max = typeof s.maximum === 'number' ? s.maximum : 1_000_000;
      return fc.integer({ min, max });
    }
    case 'number': {
      const min =
        typeof s.exclusiveMinimum === 'number'
          ? s.exclusiveMinimum + 0.01
          : typeof s.minimum === 'number'
            ? s.minimum
            : -1e6;
      return fc.oneof(
        fc.integer({ min: Math.ceil(min), max: 1_000_000 }),
        fc.double({ min, max: 1e9, noNaN: true, noDefaultInfinity: true }),
      );
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      if (depth > 3) return fc.constant([]);
      const items = (s.items ?? {}) as Json;
      return fc.array(arbitraryFor(items, resolve, depth + 1), {
        maxLength: Math.min(Number(s.maxItems ?? 3), 3),
      });
    }
    case 'object':
      return objectFor(s, resolve, depth);
    default:
      return fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
  }
}

function objectFor(s: Json, resolve: (schema: Json) => Json, depth: number): fc.Arbitrary<unknown> {
  if (depth > 3) return fc.constant({});
  const properties = (s.properties ?? {}) as Record<string, Json>;
  const required = (s.required ?? []) as string[];
  const known = fc.record(
    Object.fromEntries(
      Object.entries(properties).map(([name, property]) => [
        name,
        arbitraryFor(property, resolve, depth + 1),
      ]),
    ),
    { requiredKeys: required.filter((name) => name in properties) },
  );
  const extra = s.additionalProperties;
  if (typeof extra !== 'object' || extra === null) return known;
  const names = s.propertyNames ? stringFor(resolve(s.propertyNames as Json)) : fc.string();
  const max = Math.min(Number(s.maxProperties ?? 4), 4);
  const more = fc.dictionary(names, arbitraryFor(extra as Json, resolve, depth + 1), {
    maxKeys: max,
  });
  return fc.tuple(known, more).map(([a, b]) => ({ ...b, ...a }));
}

const codePoints = (text: string) => [...text].length;

function stringFor(s: Json): fc.Arbitrary<string> {
  const minLength = Number(s.minLength ?? 0);
  const maxLength = Math.min(Number(s.maxLength ?? 64), 200);
  switch (s.format) {
    case 'uuid':
      return fc.uuid();
    case 'date-time':
      return fc
        .date({ min: new Date('2000-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
        .map((d) => d.toISOString());
    case 'date':
      return fc
        .date({ min: new Date('2000-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
        .map((d) => d.toISOString().slice(0, 10));
    case 'uri':
      return fc.webUrl();
    default:
      break;
  }
  const text = fc.string({ unit: 'grapheme', minLength, maxLength });
  if (typeof s.pattern !== 'string') return text;
  const pattern = new RegExp(s.pattern, 'u');
  let matching: fc.Arbitrary<string>;
  try {
    matching = fc.stringMatching(pattern);
  } catch {
    matching = text;
  }
  return matching
    .map((value) =>
      codePoints(value) > maxLength ? [...value].slice(0, maxLength).join('') : value,
    )
    .filter(
      (value) =>
        pattern.test(value) && codePoints(value) >= minLength && codePoints(value) <= maxLength,
    );
}
