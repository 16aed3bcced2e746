import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FernetKey, FernetKeyError, FernetTokenError } from '../../src/modules/legacy/index.js';

/** Tokens made by Python's `cryptography` (test/fixtures/legacy/make-fernet-fixtures.py). */
const fixtures = JSON.parse(
  readFileSync(new URL('../fixtures/legacy/fernet-tokens.json', import.meta.url), 'utf8'),
) as {
  generator: string;
  key: string;
  wrong_key: string;
  known: { plaintext: string; token: string }[];
  non_utf8_token: string;
};

/** Flips one bit of the token's decoded bytes at `index` (negative: from the end). */
function tamper(token: string, index: number): string {
  const bytes = Buffer.from(token, 'base64url');
  const at = index < 0 ? bytes.length + index : index;
  bytes[at] = bytes[at]! ^ 0x01;
  return bytes.toString('base64url');
}

describe('Fernet, against tokens made by Python cryptography', () => {
  const key = new FernetKey(fixtures.key);

  it('decrypts every fixture token to its exact plaintext', () => {
    expect(fixtures.generator).toBe('python3-cryptography');
    expect(fixtures.known.length).toBeGreaterThan(10);
    for (const { plaintext, token } of fixtures.known) {
      expect(token.startsWith('gAAAAA')).toBe(true);
      expect(key.decryptText(token)).toBe(plaintext);
    }
  });

  it('accepts a token without its base64 padding', () => {
    const { plaintext, token } = fixtures.known[0]!;
    expect(token.endsWith('=')).toBe(true);
    expect(key.decryptText(token.replace(/=+$/, ''))).toBe(plaintext);
  });

  it('refuses a token under another key (the HMAC does not verify)', () => {
    const other = new FernetKey(fixtures.wrong_key);
    for (const { token } of fixtures.known.slice(0, 3)) {
      expect(() => other.decryptText(token)).toThrow(FernetTokenError);
      expect(() => other.decryptText(token)).toThrow(/HMAC/);
    }
  });

  it('refuses a tampered token, wherever the flipped bit is', () => {
    const { token } = fixtures.known[1]!;
    // timestamp, IV, ciphertext, HMAC
    for (const index of [3, 12, 30, -1]) {
      expect(() => key.decryptText(tamper(token, index))).toThrow(/HMAC/);
    }
    // The version byte is checked before the HMAC.
    expect(() => key.decryptText(tamper(token, 0))).toThrow(/version/);
  });

  it('refuses malformed tokens', () => {
    for (const bad of ['', 'gAAAAA', 'not base64 at all!', 'gAAAAAB'.repeat(3), '=abc']) {
      expect(() => key.decryptText(bad)).toThrow(FernetTokenError);
    }
    const { token } = fixtures.known[0]!;
    // Truncated by a block: the HMAC no longer covers what is there.
    const bytes = Buffer.from(token, 'base64url');
    expect(() =>
      key.decryptText(bytes.subarray(0, bytes.length - 16).toString('base64url')),
    ).toThrow(FernetTokenError);
    expect(() => key.decryptText('x'.repeat(70_000))).toThrow(/too long/);
  });

  it('refuses a plaintext that is not UTF-8', () => {
    expect(() => key.decryptText(fixtures.non_utf8_token)).toThrow(/UTF-8/);
    expect(key.decrypt(fixtures.non_utf8_token).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xfe]));
  });

  it('refuses keys that are not 32 bytes of url-safe base64, never echoing them', () => {
    for (const bad of [
      '',
      'short',
      `${fixtures.key}AAAA`,
      fixtures.key.replace(/[-_]/g, '+') + '!',
    ]) {
      let error: unknown;
      try {
        new FernetKey(bad);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(FernetKeyError);
      if (bad.length > 8) expect((error as Error).message).not.toContain(bad);
    }
    // Standard base64 of 32 bytes is not a Fernet key unless it happens to be url-safe.
    expect(() => new FernetKey(Buffer.alloc(32, 0xfb).toString('base64'))).toThrow(FernetKeyError);
  });
});
