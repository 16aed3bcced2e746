import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quoteImpreciseNumbers } from '../../src/platform/json-body.js';

describe('quoteImpreciseNumbers', () => {
  it('leaves ordinary JSON untouched', () => {
    for (const text of [
      '{"transaction_amount": 100.5}',
      '{"a": 123456789012345, "b": -0.000000000000001, "c": 1e300}',
      '{"phone": "0244123456789012345678"}',
      '{"s": "say \\"1234567890123456789\\" twice"}',
    ]) {
      expect(quoteImpreciseNumbers(text)).toBe(text);
    }
  });

  it('turns numbers with more than 15 significant digits into their exact text', () => {
    expect(quoteImpreciseNumbers('{"transaction_amount": 100.100000000000000000001}')).toBe(
      '{"transaction_amount": "100.100000000000000000001"}',
    );
    expect(quoteImpreciseNumbers('[1234567890123456, 1.5, -0.30000000000000004e2]')).toBe(
      '["1234567890123456", 1.5, "-0.30000000000000004e2"]',
    );
    expect(quoteImpreciseNumbers('{"a":10.1000000000000000000}')).toBe(
      '{"a":10.1000000000000000000}',
    );
  });

  it('never changes what JSON.parse makes of a document, except to keep digits', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        const parsed: unknown = JSON.parse(quoteImpreciseNumbers(text));
        expect(
          JSON.stringify(parsed, (_k, v: unknown) =>
            typeof v === 'string' && /^-?\d/.test(v) ? Number(v) : v,
          ),
        ).toBe(
          JSON.stringify(JSON.parse(text), (_k, v: unknown) =>
            typeof v === 'string' && /^-?\d/.test(v) ? Number(v) : v,
          ),
        );
      }),
    );
  });
});
