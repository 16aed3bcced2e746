/**
 * Fernet (https://github.com/fernet/spec), as the old service's Python `cryptography` wrote it:
 * the names it stored are tokens `base64url(0x80 | timestamp (8 bytes) | IV (16) | AES-128-CBC
 * ciphertext | HMAC-SHA256 (32))` under a 32-byte key whose first half signs and second half
 * encrypts. Decryption only: nothing new is ever written with the old key.
 *
 * Written on node:crypto rather than taken from npm: the `fernet` package pins crypto-js 3.1
 * (unmaintained), the others are single-release projects; the whole format is the few lines
 * below, tested against tokens made by Python's `cryptography`.
 */
import { createDecipheriv, createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

const KEY_BYTES = 32;
const VERSION = 0x80;
const HEADER_BYTES = 1 + 8 + 16;
const MAC_BYTES = 32;
const BLOCK_BYTES = 16;
/** Base64url with optional padding, as Python's urlsafe_b64encode writes it (always padded). */
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** A name is at most a few hundred bytes; anything far larger is not a token the old service made. */
export const FERNET_TOKEN_LENGTH_MAX = 64 * 1024;

/** LEGACY_SECRET_KEY is not a Fernet key. The message never echoes the value. */
export class FernetKeyError extends Error {
  override readonly name = 'FernetKeyError';
}

/** A token that is malformed, or whose HMAC does not verify under the key (wrong key, tampering). */
export class FernetTokenError extends Error {
  override readonly name = 'FernetTokenError';
}

function decodeBase64Url(text: string): Buffer | undefined {
  const body = text.replace(/=+$/, '');
  if (!BASE64URL.test(text) || body.length % 4 === 1) return undefined;
  if (text.length !== body.length && text.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64url');
}

/** A Fernet key, parsed once: decrypts the old service's tokens. */
export class FernetKey {
  readonly #signingKey: KeyObject;
  readonly #encryptionKey: KeyObject;

  /** `key`: 32 bytes, url-safe base64 (what `Fernet.generate_key()` prints). */
  constructor(key: string) {
    const bytes = decodeBase64Url(key.trim());
    if (bytes === undefined) {
      throw new FernetKeyError(
        "LEGACY_SECRET_KEY is not url-safe base64: expected the old service's SECRET_KEY, a Fernet key such as the output of Fernet.generate_key()",
      );
    }
    if (bytes.length !== KEY_BYTES) {
      throw new FernetKeyError(
        `LEGACY_SECRET_KEY must decode to ${KEY_BYTES} bytes (it decodes to ${bytes.length}): expected a Fernet key`,
      );
    }
    this.#signingKey = createSecretKey(bytes.subarray(0, 16));
    this.#encryptionKey = createSecretKey(bytes.subarray(16));
  }

  /**
   * The plaintext of a token, after verifying its HMAC (in constant time). No time-to-live: the
   * old service never set one, and the tokens are years old by design.
   */
  decrypt(token: string): Buffer {
    if (token.length > FERNET_TOKEN_LENGTH_MAX) throw new FernetTokenError('token too long');
    const data = decodeBase64Url(token);
    if (data === undefined) throw new FernetTokenError('token is not url-safe base64');
    if (data.length < HEADER_BYTES + BLOCK_BYTES + MAC_BYTES) {
      throw new FernetTokenError('token too short');
    }
    if (data[0] !== VERSION) throw new FernetTokenError('unknown token version');
    const signed = data.subarray(0, data.length - MAC_BYTES);
    const mac = data.subarray(data.length - MAC_BYTES);
    const expected = createHmac('sha256', this.#signingKey).update(signed).digest();
    if (!timingSafeEqual(mac, expected)) {
      // The wrong key and a tampered token look the same, as in Python (InvalidToken).
      throw new FernetTokenError('HMAC does not verify: wrong key or tampered token');
    }
    const ciphertext = signed.subarray(HEADER_BYTES);
    if (ciphertext.length % BLOCK_BYTES !== 0) {
      throw new FernetTokenError('ciphertext is not whole blocks');
    }
    const decipher = createDecipheriv(
      'aes-128-cbc',
      this.#encryptionKey,
      signed.subarray(9, HEADER_BYTES),
    );
    try {
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new FernetTokenError('bad padding');
    }
  }

  /** The token's plaintext as text; a token whose plaintext is not UTF-8 is refused. */
  decryptText(token: string): string {
    const bytes = this.decrypt(token);
    try {
      return UTF8.decode(bytes);
    } catch {
      throw new FernetTokenError('plaintext is not UTF-8');
    }
  }
}
