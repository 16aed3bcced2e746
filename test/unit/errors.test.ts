import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/platform/errors.js';
import { serializeError } from '../../src/platform/logging.js';

describe('isDatabaseUnavailable', () => {
  it.each([
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    new Error('Connection terminated unexpectedly'),
    new Error('timeout exceeded when trying to connect'),
    Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    }),
    Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }),
    Object.assign(new Error('connection failure'), { code: '08006' }),
    new Error('Failed query', { cause: new Error('Connection terminated') }),
  ])('recognises %s', (error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    Object.assign(new Error('duplicate key value'), { code: '23505' }),
    Object.assign(new Error('syntax error'), { code: '42601' }),
    new TypeError('x is undefined'),
    undefined,
    'Connection terminated',
  ])('does not mistake %s for an outage', (error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('serializeError', () => {
  it('keeps the SQL of a failed query but never its parameters', async () => {
    const { DrizzleQueryError } = await import('drizzle-orm/errors');
    const error = new DrizzleQueryError(
      'insert into "transactions" ("description") values ($1)',
      ['my secret note'],
      Object.assign(new Error('Connection terminated'), { code: 'ECONNRESET' }),
    );
    const logged = JSON.stringify(serializeError(error));
    expect(logged).not.toContain('my secret note');
    expect(logged).toContain('insert into');
    expect(serializeError(error)).toMatchObject({
      message: 'Failed query: insert into "transactions" ("description") values ($1)',
      cause: { message: 'Connection terminated', code: 'ECONNRESET' },
    });
  });
});
