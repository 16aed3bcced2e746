import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

// ajv-formats is CommonJS with a default export; under NodeNext its namespace arrives here.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * Checks answers against the served OpenAPI document with a validator of our own (Ajv in
 * JSON Schema 2020-12 mode, the dialect OpenAPI 3.1 uses), not the one the server validates and
 * serializes with: what a third-party client would check.
 */

export type Json = Record<string, unknown>;

export interface Operation {
  method: string;
  /** The document's path template, e.g. `/api/v1/transaction/{id}`. */
  path: string;
  id: string;
  parameters: Json[];
  requestBody: Json | undefined;
  responses: Record<string, Json>;
  authenticated: boolean;
}

/** Headers whose presence on an answer the document must announce. */
const TRACKED_HEADERS = [
  'etag',
  'location',
  'idempotent-replayed',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-policy',
  'retry-after',
  'www-authenticate',
  'x-request-id',
  'fido-auth',
];

export interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

export class Contract {
  readonly operations: Operation[];
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<unknown, ValidateFunction>();

  constructor(readonly document: Json) {
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    addFormats(this.ajv);
    // Only the components: every $ref in the document points into them.
    this.ajv.addSchema({ $id: 'openapi.json', components: document.components }, 'openapi.json');
    const paths = document.paths as Record<string, Record<string, Json>>;
    this.operations = Object.entries(paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, operation]) => ({
        method: method.toUpperCase(),
        path,
        id: String(operation.operationId),
        parameters: ((operation.parameters ?? []) as Json[]).map((p) => this.resolve(p)),
        requestBody: operation.requestBody
          ? this.resolve(operation.requestBody as Json)
          : undefined,
        responses: Object.fromEntries(
          Object.entries(operation.responses as Record<string, Json>).map(([status, r]) => [
            status,
            this.resolve(r),
          ]),
        ),
        authenticated: ((operation.security ?? []) as unknown[]).length > 0,
      })),
    );
  }

  static async load(app: FastifyInstance): Promise<Contract> {
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    return new Contract(response.json());
  }

  operation(id: string): Operation {
    const found = this.operations.find((operation) => operation.id === id);
    if (!found) throw new Error(`no operation ${id} in the document`);
    return found;
  }

  /** Follows a local `$ref` (`#/components/...`) to the object it names. */
  resolve(value: Json): Json {
    let current = value;
    for (let depth = 0; typeof current.$ref === 'string' && depth < 8; depth += 1) {
      const pointer = current.$ref.replace(/^#\//, '').split('/');
      let target: unknown = this.document;
      for (const segment of pointer) {
        target = (target as Json)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
      }
      current = target as Json;
    }
    return current;
  }

  /** A schema of the document, with its $refs pointed at the document's components. */
  schemaOf(schema: unknown): ValidateFunction {
    const known = this.validators.get(schema);
    if (known) return known;
    const rebased = JSON.parse(
      JSON.stringify(schema).replace(/"\$ref":"#\//g, '"$ref":"openapi.json#/'),
    ) as Json;
    const validate = this.ajv.compile(rebased);
    this.validators.set(schema, validate);
    return validate;
  }

  /**
   * Every way `answer` departs from what the document says `operation` answers: a status it
   * does not list, a body its schema refuses, a content type it does not name, a tracked header
   * it does not announce, a header value its schema refuses. Empty when the answer conforms.
   */
  problems(operation: Operation, answer: Answer): string[] {
    const where = `${operation.id} ${answer.statusCode}`;
    const documented = operation.responses[String(answer.statusCode)];
    if (!documented) {
      return [`${where}: status not documented (body ${answer.body.slice(0, 300)})`];
    }
    const problems: string[] = [];
    const content = documented.content as Record<string, Json> | undefined;
    const contentType = String(answer.headers['content-type'] ?? '');
    if (!content) {
      if (answer.body !== '') problems.push(`${where}: a body where none is documented`);
    } else {
      const mediaType = Object.keys(content).find((type) => contentType.startsWith(type));
      if (!mediaType) {
        problems.push(
          `${where}: content type ${contentType} not in ${Object.keys(content).join(', ')}`,
        );
      } else if (mediaType === 'application/json') {
        let body: unknown;
        try {
          body = JSON.parse(answer.body);
        } catch {
          problems.push(`${where}: the body is not JSON: ${answer.body.slice(0, 200)}`);
        }
        const validate = this.schemaOf(content[mediaType]?.schema);
        if (body !== undefined && !validate(body)) {
          problems.push(
            `${where}: body refused by its schema: ${this.ajv.errorsText(validate.errors)} ` +
              `(body ${answer.body.slice(0, 300)})`,
          );
        }
      }
    }
    const headers = (documented.headers ?? {}) as Record<string, Json>;
    const announced = new Map(
      Object.entries(headers).map(([name, h]) => [name.toLowerCase(), this.resolve(h)]),
    );
    for (const name of TRACKED_HEADERS) {
      const value = answer.headers[name];
      if (value === undefined) continue;
      const header = announced.get(name);
      if (!header) {
        problems.push(`${where}: header ${name} sent but not documented`);
        continue;
      }
      const schema = header.schema as Json | undefined;
      if (!schema) continue;
      const text = String(value);
      const typed = schema.type === 'integer' && /^-?\d+$/.test(text) ? Number(text) : text;
      const validate = this.schemaOf(schema);
      if (!validate(typed)) {
        problems.push(`${where}: header ${name}: ${text} refused by its schema`);
      }
    }
    return problems;
  }
}

/** Fills a path template: `/api/v1/transaction/{id}` with `{ id }`, each value percent-encoded. */
export function fillPath(template: string, values: Record<string, string>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodeURIComponent(values[name] ?? 'missing'),
  );
}
