import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

/*
 * docs/configuration.md against src/config.ts: every variable the service reads is documented,
 * nothing is documented that it does not read, and each documented default is the default
 * (setting a variable to the value the docs give as its default changes nothing). .env.example
 * lists every variable too.
 */

const page = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
const envExample = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');

interface Row {
  names: string[];
  /** The default column's first `code` span, unless the default is "unset". */
  literal: string | undefined;
}

/** The variables table: rows whose first cell names variables in backticks. */
const rows: Row[] = page
  .split('\n')
  .filter((line) => /^\|\s*`[A-Z][A-Z0-9_]*`/.test(line))
  .map((line) => {
    const [, names = '', defaults = ''] = line.split('|');
    return {
      names: [...names.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((match) => match[1]!),
      literal: defaults.trim().startsWith('`') ? /`([^`]*)`/.exec(defaults)?.[1] : undefined,
    };
  });
const documented = rows.flatMap((row) => row.names);

/** The names loadConfig reads from `env`, whatever their values. */
function namesRead(env: Record<string, string>): Set<string> {
  const read = new Set<string>();
  const recording = new Proxy(env, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return target[name as string];
    },
    has(target, name) {
      if (typeof name === 'string') read.add(name);
      return name in target;
    },
  });
  try {
    loadConfig(recording);
  } catch {
    // A refused configuration still shows what was read.
  }
  return read;
}

describe('docs/configuration.md', () => {
  it('documents every variable the service reads, and only those', () => {
    const read = new Set([
      ...namesRead({}),
      ...namesRead({ NODE_ENV: 'production' }),
      ...namesRead({ DATABASE_URL: 'postgres://localhost/x', REDIS_URL: 'redis://localhost' }),
    ]);
    expect(new Set(documented)).toEqual(read);
    expect(documented).toHaveLength(new Set(documented).size);
  });

  it.each(rows.filter((row) => row.literal !== undefined).flatMap((row) => row.names))(
    '%s: the documented default is the default',
    (name) => {
      const literal = rows.find((row) => row.names.includes(name))!.literal!;
      expect(loadConfig({ [name]: literal })).toEqual(loadConfig({}));
    },
  );

  it('lists the variables in .env.example too', () => {
    const missing = documented.filter(
      (name) => !new RegExp(`^#?\\s*${name}=`, 'm').test(envExample),
    );
    expect(missing).toEqual([]);
  });
});
