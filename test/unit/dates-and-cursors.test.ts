import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../src/modules/transactions/cursor.js';
import { parseInstant } from '../../src/domain/dates.js';

describe('parseInstant', () => {
  it.each([
    ['2024-10-10', '2024-10-10T00:00:00.000Z'],
    ['2024-10-10T09:00:00Z', '2024-10-10T09:00:00.000Z'],
    ['2024-10-10T09:00:00', '2024-10-10T09:00:00.000Z'],
    ['2024-10-10T09:00', '2024-10-10T09:00:00.000Z'],
    ['2024-10-10 09:00:00.5', '2024-10-10T09:00:00.500Z'],
    ['2024-10-10T09:00:00.123456Z', '2024-10-10T09:00:00.123Z'],
    ['2024-10-10T09:00:00+02:00', '2024-10-10T07:00:00.000Z'],
    ['2024-10-10T01:00:00-0530', '2024-10-10T06:30:00.000Z'],
    ['2024-10-10T23:30:00+01', '2024-10-10T22:30:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
  ])('reads %s as %s', (text, iso) => {
    expect(parseInstant(text)?.toISOString()).toBe(iso);
  });

  it.each([
    '2023-02-29',
    '2024-13-01',
    '2024-10-32',
    '2024-10-10T24:00:00Z',
    '2024-10-10T09:60:00Z',
    '2024-10-10T09:00:00+25:00',
    '10/10/2024',
    '2024-10-10T09:00:00 Z',
    '1899-12-31',
    '',
    'now',
  ])('refuses %s', (text) => {
    expect(parseInstant(text)).toBeUndefined();
  });

  it('round-trips every millisecond instant written as ISO 8601', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('1900-01-01T00:00:00Z'),
          max: new Date('9999-12-31T23:59:59Z'),
          noInvalidDate: true,
        }),
        (date) => {
          expect(parseInstant(date.toISOString())?.getTime()).toBe(date.getTime());
        },
      ),
    );
  });
});

describe('history cursors', () => {
  it('round-trip any position', () => {
    fc.assert(
      fc.property(
        // The dates a transaction can carry (see parseInstant).
        fc.date({ noInvalidDate: true, min: new Date('1900-01-01'), max: new Date('9999-12-31') }),
        fc.uuid(),
        (date, id) => {
          expect(decodeCursor(encodeCursor({ transactionDate: date, id }))).toEqual({
            transactionDate: date,
            id,
          });
        },
      ),
    );
  });

  it('refuse anything that is not one of ours', () => {
    const farFuture = `300000000000000.${'0192e0c2-7a1b-7c3d-8e4f-123456789abc'}`;
    for (const bad of [
      '',
      '!!!',
      'abc',
      Buffer.from('123.not-a-uuid').toString('base64url'),
      Buffer.from(farFuture).toString('base64url'),
    ]) {
      expect(decodeCursor(bad)).toBeUndefined();
    }
    fc.assert(
      fc.property(fc.string(), (text) => {
        const decoded = decodeCursor(text);
        if (decoded) expect(encodeCursor(decoded)).toBeTypeOf('string');
      }),
    );
  });
});
