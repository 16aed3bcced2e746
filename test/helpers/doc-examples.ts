/**
 * The docs' runnable examples: how they are written, found and compared.
 *
 * An example is a fenced `sh` block preceded by an HTML comment a reader does not see:
 *
 *     <!-- example -->                      run it; its output must match the next block
 *     <!-- example ID=.data.id -->          ... and then set $ID from the JSON answer
 *
 * The block runs in bash with the variables set so far (`$FIDO_KEY`, `$ID`, …), against the
 * page's own fresh server (`http://localhost:8000` is rewritten to it). The fenced block that
 * follows it directly (only blank lines between) is the expected output:
 *
 * - `json`: the answer parsed and compared as a pattern. A string `"…"` matches any value; a
 *   string with `…` in it matches any text in that place (`"Transaction …"`); an object with a
 *   `"…": "…"` entry may have more keys than those shown (otherwise exactly those); an array whose
 *   last element is `"…"` may have more elements. `$NAME` in a string is a captured variable.
 * - `http` (for `curl -si`): the status line exactly, each header shown (value as a pattern
 *   with `…`; headers not shown are not checked), a blank line, then the body as `json` or text.
 * - `text`: the output, with `…` matching any text.
 *
 * An example with no block after it must print nothing (an `export`, say).
 */

export interface DocExample {
  /** 1-based line of the `sh` block's opening fence, for failure messages. */
  line: number;
  command: string;
  /** Variables to capture from the JSON answer: name → path like `.data.id`. */
  captures: Record<string, string>;
  expected?: { lang: string; text: string };
}

interface Fence {
  line: number;
  lang: string;
  text: string;
  /** Index just after the closing fence, in lines. */
  end: number;
}

function fenceAt(lines: string[], index: number): Fence | undefined {
  const open = /^```(\w*)\s*$/.exec(lines[index] ?? '');
  if (!open) return undefined;
  for (let close = index + 1; close < lines.length; close += 1) {
    if (lines[close] === '```') {
      return {
        line: index + 1,
        lang: open[1] ?? '',
        text: lines.slice(index + 1, close).join('\n'),
        end: close + 1,
      };
    }
  }
  throw new Error(`unclosed code fence at line ${index + 1}`);
}

const MARKER = /^<!-- example((?:\s+[A-Z_][A-Z0-9_]*=\S+)*)\s*-->$/;

/** The examples of one markdown page, in order. */
export function parseExamples(markdown: string): DocExample[] {
  const lines = markdown.split('\n');
  const examples: DocExample[] = [];
  for (let index = 0; index < lines.length; index += 1) {
    const marker = MARKER.exec(lines[index] ?? '');
    if (!marker) continue;
    let next = index + 1;
    while (lines[next]?.trim() === '') next += 1;
    const block = fenceAt(lines, next);
    if (!block || block.lang !== 'sh') {
      throw new Error(`line ${index + 1}: an example marker must be followed by a sh block`);
    }
    const captures: Record<string, string> = {};
    for (const pair of (marker[1] ?? '').trim().split(/\s+/).filter(Boolean)) {
      const [name, path] = pair.split('=') as [string, string];
      captures[name] = path;
    }
    let after = block.end;
    while (lines[after]?.trim() === '') after += 1;
    const output = fenceAt(lines, after);
    const example: DocExample = { line: block.line, command: block.text, captures };
    if (output && output.lang !== 'sh') {
      example.expected = { lang: output.lang, text: output.text };
      index = output.end - 1;
    } else {
      index = block.end - 1;
    }
    examples.push(example);
  }
  return examples;
}

/** Every `sh` block of a page that calls the service with curl, marked as an example or not. */
export function serviceCalls(markdown: string): { line: number; marked: boolean }[] {
  const lines = markdown.split('\n');
  const calls: { line: number; marked: boolean }[] = [];
  for (let index = 0; index < lines.length; index += 1) {
    const block = fenceAt(lines, index);
    if (!block) continue;
    if (block.lang === 'sh' && /\bcurl\b[\s\S]*localhost:8000/.test(block.text)) {
      let before = index - 1;
      while (lines[before]?.trim() === '') before -= 1;
      calls.push({ line: block.line, marked: MARKER.test(lines[before] ?? '') });
    }
    index = block.end - 1;
  }
  return calls;
}

const ANY = '…';

function substitute(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$([A-Z_][A-Z0-9_]*)/g, (whole, name: string) => vars[name] ?? whole);
}

function globMatches(pattern: string, actual: string): boolean {
  const source = pattern
    .split(ANY)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[\\s\\S]*');
  return new RegExp(`^${source}$`).test(actual);
}

/** Differences between a JSON pattern and a value: empty when it matches. */
export function jsonDifferences(
  expected: unknown,
  actual: unknown,
  vars: Readonly<Record<string, string>> = {},
  at = '$',
): string[] {
  if (typeof expected === 'string') {
    if (expected === ANY) return [];
    if (typeof actual !== 'string')
      return [`${at}: expected a string, got ${JSON.stringify(actual)}`];
    const pattern = substitute(expected, vars);
    return globMatches(pattern, actual)
      ? []
      : [`${at}: expected ${JSON.stringify(pattern)}, got ${JSON.stringify(actual)}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${at}: expected an array, got ${JSON.stringify(actual)}`];
    const open = expected.at(-1) === ANY;
    const shown = open ? expected.slice(0, -1) : expected;
    if (open ? actual.length < shown.length : actual.length !== shown.length) {
      return [
        `${at}: expected ${open ? 'at least ' : ''}${shown.length} elements, got ${actual.length}`,
      ];
    }
    return shown.flatMap((item, i) => jsonDifferences(item, actual[i], vars, `${at}[${i}]`));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
      return [`${at}: expected an object, got ${JSON.stringify(actual)}`];
    }
    const shown = Object.entries(expected).filter(([key]) => key !== ANY);
    const open = ANY in expected;
    const problems = shown.flatMap(([key, value]) =>
      key in actual
        ? jsonDifferences(value, (actual as Record<string, unknown>)[key], vars, `${at}.${key}`)
        : [`${at}.${key}: missing`],
    );
    if (!open) {
      const extra = Object.keys(actual).filter((key) => !(key in expected));
      if (extra.length > 0) problems.push(`${at}: keys not shown in the docs: ${extra.join(', ')}`);
    }
    return problems;
  }
  return Object.is(expected, actual)
    ? []
    : [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

function bodyDifferences(
  expected: string,
  actual: string,
  vars: Readonly<Record<string, string>>,
): string[] {
  let pattern: unknown;
  try {
    pattern = JSON.parse(expected);
  } catch {
    return globMatches(substitute(expected.trim(), vars), actual.trim())
      ? []
      : [
          `expected output ${JSON.stringify(expected.trim())}, got ${JSON.stringify(actual.trim())}`,
        ];
  }
  let value: unknown;
  try {
    value = JSON.parse(actual);
  } catch {
    return [`expected JSON, got ${JSON.stringify(actual)}`];
  }
  return jsonDifferences(pattern, value, vars);
}

/** Splits `curl -i` output into status line, headers and body. */
export function splitHttp(output: string): {
  status: string;
  headers: Map<string, string>;
  body: string;
} {
  const normalised = output.replace(/\r\n/g, '\n');
  const split = normalised.indexOf('\n\n');
  const head = split === -1 ? normalised : normalised.slice(0, split);
  const body = split === -1 ? '' : normalised.slice(split + 2);
  const [status = '', ...headerLines] = head.split('\n');
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0)
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: status.trim(), headers, body };
}

/** Differences between an example's expected block and what it printed: empty when it matches. */
export function outputDifferences(
  expected: DocExample['expected'],
  stdout: string,
  vars: Readonly<Record<string, string>>,
): string[] {
  if (!expected) {
    return stdout.trim() === '' ? [] : [`printed output the docs do not show: ${stdout}`];
  }
  if (expected.lang !== 'http') return bodyDifferences(expected.text, stdout, vars);
  const want = splitHttp(expected.text);
  const got = splitHttp(stdout);
  const problems: string[] = [];
  if (want.status !== got.status)
    problems.push(`status: expected ${want.status}, got ${got.status}`);
  for (const [name, value] of want.headers) {
    const actual = got.headers.get(name);
    if (actual === undefined) problems.push(`header ${name}: missing`);
    else if (!globMatches(substitute(value, vars), actual)) {
      problems.push(`header ${name}: expected ${value}, got ${actual}`);
    }
  }
  if (want.body.trim() !== '' || got.body.trim() !== '') {
    problems.push(...bodyDifferences(want.body, got.body, vars));
  }
  return problems;
}

/** The value at `path` (`.data.id`, `.pagination.next_cursor`) in the JSON body of `stdout`. */
export function capture(stdout: string, path: string): string {
  const body = /^HTTP\/\S+ \d{3}/.test(stdout) ? splitHttp(stdout).body : stdout;
  let value: unknown = JSON.parse(body);
  for (const key of path.split('.').filter(Boolean)) {
    value = (value as Record<string, unknown> | undefined)?.[key];
  }
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new Error(`nothing to capture at ${path} in ${body}`);
  }
  return String(value);
}
