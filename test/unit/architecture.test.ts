import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/*
 * The layering of src/ (docs/architecture.md, "Code map"): modules import each other without
 * cycles, and the layers below them (domain, platform, db, config.ts) import no module. ESLint
 * keeps every cross-module import on a module's index.ts; this test follows the imports.
 */

const SRC = path.resolve(import.meta.dirname, '../../src');
const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Every relative import of `file`, resolved to a path relative to src/ (`.ts`, not `.js`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)]
    .map((match) => match[1]!)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) =>
      path.relative(SRC, path.resolve(path.dirname(file), specifier)).replace(/\.js$/, '.ts'),
    );
}

/** `modules/<m>/…` → `m`; anything else → undefined. */
function moduleOf(relative: string): string | undefined {
  const [top, name, rest] = relative.split(path.sep);
  return top === 'modules' && rest !== undefined ? name : undefined;
}

const files = sourceFiles(SRC).map((file) => ({
  path: path.relative(SRC, file),
  imports: importsOf(file),
}));

/** Module → the modules it imports (directly). */
function moduleGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const from = moduleOf(file.path);
    if (from === undefined) continue;
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const target of file.imports) {
      const to = moduleOf(target);
      if (to !== undefined && to !== from) edges.add(to);
    }
  }
  return graph;
}

/** A cycle as a path (`a → b → a`), or undefined when the graph has none. */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const done = new Set<string>();
  const visit = (node: string, trail: string[]): string[] | undefined => {
    const at = trail.indexOf(node);
    if (at >= 0) return [...trail.slice(at), node];
    if (done.has(node)) return undefined;
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next, [...trail, node]);
      if (cycle) return cycle;
    }
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node, []);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * The exported async functions of a repository's `text` whose first parameter is not typed `Db`
 * (one repository signature: the database handle or a transaction first, then the arguments).
 */
function withoutDbFirst(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const has = (node: ts.FunctionDeclaration, kind: ts.SyntaxKind) =>
    node.modifiers?.some((modifier) => modifier.kind === kind) ?? false;
  return source.statements
    .filter(ts.isFunctionDeclaration)
    .filter((fn) => has(fn, ts.SyntaxKind.ExportKeyword) && has(fn, ts.SyntaxKind.AsyncKeyword))
    .filter((fn) => fn.parameters[0]?.type?.getText(source) !== 'Db')
    .map((fn) => `${file}: ${fn.name?.text ?? 'default'}`);
}

describe('the layering of src/', () => {
  it('finds a cycle when there is one (the check itself)', () => {
    const graph = new Map([
      ['transactions', new Set(['events'])],
      ['events', new Set(['webhooks'])],
      ['webhooks', new Set(['transactions'])],
    ]);
    expect(findCycle(graph)).toEqual(['transactions', 'events', 'webhooks', 'transactions']);
  });

  it('has modules that import each other without cycles', () => {
    const graph = moduleGraph();
    // Every module was read (a walk that found nothing would find no cycle either).
    expect([...graph.keys()].sort()).toEqual(readdirSync(path.join(SRC, 'modules')).sort());
    expect(findCycle(graph)).toBeUndefined();
  });

  it('gives every module a public index.ts', () => {
    const modules = readdirSync(path.join(SRC, 'modules'));
    const indexes = files.map((file) => file.path.split(path.sep));
    for (const name of modules) {
      expect(indexes).toContainEqual(['modules', name, 'index.ts']);
    }
  });

  it('keeps domain, platform, db and config.ts below the modules', () => {
    const lower = files.filter((file) => /^(domain|platform|db)\/|^config\.ts$/.test(file.path));
    const offending = lower.flatMap((file) =>
      file.imports
        .filter((target) => /^(modules|plugins)\//.test(target))
        .map((target) => `${file.path} → ${target}`),
    );
    expect(offending).toEqual([]);
  });

  it('finds a repository function without a Db first (the check itself)', () => {
    const text = [
      'export async function good(db: Db, id: string) {}',
      'export async function bad(id: string, db: Db) {}',
      'export async function none() {}',
      'async function internal(id: string) {}',
      'export function mapper(row: unknown) {}',
    ].join('\n');
    expect(withoutDbFirst('x.repository.ts', text)).toEqual([
      'x.repository.ts: bad',
      'x.repository.ts: none',
    ]);
  });

  it('gives every exported async function of a repository a Db first parameter', () => {
    const repositories = files.filter((file) => file.path.endsWith('.repository.ts'));
    expect(repositories.length).toBeGreaterThan(5);
    const offending = repositories.flatMap((file) =>
      withoutDbFirst(file.path, readFileSync(path.join(SRC, file.path), 'utf8')),
    );
    expect(offending).toEqual([]);
  });
});
