import { describe, expect, it } from 'vitest';
import {
  capture,
  jsonDifferences,
  outputDifferences,
  parseExamples,
  serviceCalls,
} from '../helpers/doc-examples.js';

/* The docs-examples test is only as good as its comparison: these show what it refuses. */

describe('the docs example format', () => {
  it('finds examples, their captures and the block after them', () => {
    const page = [
      '<!-- example ID=.data.id -->',
      '',
      '```sh',
      'curl -s http://localhost:8000/x',
      '```',
      '',
      '```json',
      '{ "data": { "id": "…" } }',
      '```',
      '',
      '<!-- example -->',
      '```sh',
      'export A=1',
      '```',
      '',
      'Text.',
      '',
      '```sh',
      'curl -s http://localhost:8000/y',
      '```',
    ].join('\n');
    const examples = parseExamples(page);
    expect(examples).toHaveLength(2);
    expect(examples[0]).toMatchObject({
      line: 3,
      captures: { ID: '.data.id' },
      expected: { lang: 'json' },
    });
    expect(examples[1]?.expected).toBeUndefined();
    expect(serviceCalls(page)).toEqual([
      { line: 3, marked: true },
      { line: 18, marked: false },
    ]);
  });

  it('refuses values, keys and elements the docs do not show', () => {
    expect(jsonDifferences({ a: 1 }, { a: 2 })).toHaveLength(1);
    expect(jsonDifferences({ a: 1 }, { a: 1, b: 2 })).toEqual(['$: keys not shown in the docs: b']);
    expect(jsonDifferences({ a: 1, '…': '…' }, { a: 1, b: 2 })).toEqual([]);
    expect(jsonDifferences({ a: 1, '…': '…' }, { b: 2 })).toEqual(['$.a: missing']);
    expect(jsonDifferences([1], [1, 2])).toHaveLength(1);
    expect(jsonDifferences([1, '…'], [1, 2])).toEqual([]);
    expect(jsonDifferences('…', { anything: true })).toEqual([]);
    expect(jsonDifferences('id …', 'id 42')).toEqual([]);
    expect(jsonDifferences('id …', 'no 42')).toHaveLength(1);
    expect(jsonDifferences('$ID', 'abc', { ID: 'abc' })).toEqual([]);
    expect(jsonDifferences('$ID', 'abd', { ID: 'abc' })).toHaveLength(1);
    expect(jsonDifferences(null, 0)).toHaveLength(1);
  });

  it('checks an HTTP answer by status line, the headers shown, and body', () => {
    const expected = { lang: 'http', text: 'HTTP/1.1 201 Created\netag: "1"\n\n{ "ok": true }' };
    const answer = (status: string, etag: string, body: string) =>
      `HTTP/1.1 ${status}\r\netag: ${etag}\r\nx-other: 1\r\n\r\n${body}`;
    expect(outputDifferences(expected, answer('201 Created', '"1"', '{"ok":true}'), {})).toEqual(
      [],
    );
    expect(outputDifferences(expected, answer('200 OK', '"1"', '{"ok":true}'), {})).toHaveLength(1);
    expect(
      outputDifferences(expected, answer('201 Created', '"2"', '{"ok":true}'), {}),
    ).toHaveLength(1);
    expect(
      outputDifferences(expected, answer('201 Created', '"1"', '{"ok":false}'), {}),
    ).toHaveLength(1);
    expect(capture(answer('201 Created', '"1"', '{"data":{"id":"x"}}'), '.data.id')).toBe('x');
  });

  it('refuses output the docs do not show', () => {
    expect(outputDifferences(undefined, '', {})).toEqual([]);
    expect(outputDifferences(undefined, 'something', {})).toHaveLength(1);
    expect(outputDifferences({ lang: 'text', text: '# HELP …' }, '# HELP x\nmore', {})).toEqual([]);
    expect(outputDifferences({ lang: 'text', text: '# HELP …' }, 'nope', {})).toHaveLength(1);
  });
});
