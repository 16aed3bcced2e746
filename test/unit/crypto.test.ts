import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DecryptionError,
  FieldCipher,
  KeyConfigError,
  generateKeyBase64,
  loadOrCreateDevKeyRing,
  parseKeyRing,
  type KeyRing,
} from '../../src/platform/crypto.js';

const ROW_ID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const OTHER_ROW_ID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c';

function ringOf(...entries: [id: string, key: Buffer][]): KeyRing {
  const [first] = entries;
  if (first === undefined) throw new Error('ringOf needs at least one key');
  return { activeKeyId: first[0], keys: new Map(entries) };
}

function expectedKeyId(key: Buffer): string {
  const digest = createHash('sha256').update('fido-key-id:').update(key).digest('hex');
  return `k${digest.slice(0, 8)}`;
}

/** Calls fn and returns what it threw, failing the test when it does not throw. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function payloadOf(stored: string): Buffer {
  return Buffer.from(stored.slice(stored.lastIndexOf('.') + 1), 'base64url');
}

function withPayload(stored: string, payload: Buffer): string {
  return stored.slice(0, stored.lastIndexOf('.') + 1) + payload.toString('base64url');
}

const key1 = randomBytes(32);
const key2 = randomBytes(32);
const cipher = new FieldCipher(ringOf(['k1', key1]));

describe('FieldCipher', () => {
  it('round-trips arbitrary unicode text bound to a row id', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.uuid(),
        (plaintext, rowId) => {
          expect(cipher.decrypt(cipher.encrypt(plaintext, rowId), rowId)).toBe(plaintext);
        },
      ),
    );
  });

  it('round-trips any well-formed code point sequence, including controls and NUL', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (plaintext) => {
        expect(cipher.decrypt(cipher.encrypt(plaintext, ROW_ID), ROW_ID)).toBe(plaintext);
      }),
    );
  });

  it('round-trips the empty string', () => {
    expect(cipher.decrypt(cipher.encrypt('', ROW_ID), ROW_ID)).toBe('');
  });

  it('rejects strings with unpaired surrogates, which UTF-8 cannot carry', () => {
    expect(() => cipher.encrypt('a\uD800b', ROW_ID)).toThrow(TypeError);
    expect(cipher.decrypt(cipher.encrypt('a\uD83D\uDE00b', ROW_ID), ROW_ID)).toBe('a\u{1F600}b');
  });

  it('produces the documented v1.<keyId>.<base64url> format', () => {
    const stored = cipher.encrypt('Jane Doe', ROW_ID);
    expect(stored).toMatch(/^v1\.k1\.[A-Za-z0-9_-]+$/);
    // nonce (12) + ciphertext (8 bytes of UTF-8) + tag (16)
    expect(payloadOf(stored)).toHaveLength(12 + 8 + 16);
  });

  it('never stores the plaintext or its base64 encodings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 6, maxLength: 200 }), (plaintext) => {
        const stored = cipher.encrypt(plaintext, ROW_ID);
        const bytes = Buffer.from(plaintext, 'utf8');
        expect(stored).not.toContain(plaintext);
        expect(stored).not.toContain(bytes.toString('base64'));
        expect(stored).not.toContain(bytes.toString('base64url'));
      }),
    );
  });

  it('encrypts the same plaintext differently each time', () => {
    const first = cipher.encrypt('Jane Doe', ROW_ID);
    const second = cipher.encrypt('Jane Doe', ROW_ID);
    expect(first).not.toBe(second);
    expect(payloadOf(first).subarray(0, 12)).not.toEqual(payloadOf(second).subarray(0, 12));
    expect(cipher.decrypt(first, ROW_ID)).toBe(cipher.decrypt(second, ROW_ID));
  });

  it('refuses to decrypt a value moved to another row', () => {
    const stored = cipher.encrypt('Jane Doe', ROW_ID);
    expect(() => cipher.decrypt(stored, OTHER_ROW_ID)).toThrow(DecryptionError);
    expect(() => cipher.decrypt(stored, OTHER_ROW_ID)).toThrow(
      'cannot decrypt with key k1: authentication failed',
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), fc.uuid(), fc.uuid(), (plaintext, a, b) => {
        fc.pre(a !== b);
        const stored = cipher.encrypt(plaintext, a);
        const error = thrownBy(() => cipher.decrypt(stored, b));
        expect(error).toBeInstanceOf(DecryptionError);
        expect((error as Error).message).toContain('authentication failed');
        expect((error as Error).message).toContain('k1');
      }),
    );
  });

  it('detects any tampered byte', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 50 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (plaintext, position, flip) => {
          const stored = cipher.encrypt(plaintext, ROW_ID);
          const payload = payloadOf(stored);
          const index = position % payload.length;
          payload[index] = payload[index]! ^ flip;
          const error = thrownBy(() => cipher.decrypt(withPayload(stored, payload), ROW_ID));
          expect(error).toBeInstanceOf(DecryptionError);
          expect((error as Error).message).toContain('authentication failed');
        },
      ),
    );
  });

  it('detects a truncated or extended payload', () => {
    const stored = cipher.encrypt('Jane Doe', ROW_ID);
    const payload = payloadOf(stored);
    for (const changed of [
      payload.subarray(0, payload.length - 1),
      Buffer.concat([payload, Buffer.from([0])]),
    ]) {
      expect(() => cipher.decrypt(withPayload(stored, changed), ROW_ID)).toThrow(DecryptionError);
    }
  });

  it('fails authentication when the key id is swapped for another known key', () => {
    const both = new FieldCipher(ringOf(['k1', key1], ['k2', key2]));
    const stored = both.encrypt('Jane Doe', ROW_ID).replace(/^v1\.k1\./, 'v1.k2.');
    expect(() => both.decrypt(stored, ROW_ID)).toThrow(
      new DecryptionError('cannot decrypt with key k2: authentication failed'),
    );
  });

  it('names an unknown key id', () => {
    const stored = new FieldCipher(ringOf(['kabc', key2])).encrypt('Jane Doe', ROW_ID);
    const error = thrownBy(() => cipher.decrypt(stored, ROW_ID));
    expect(error).toBeInstanceOf(DecryptionError);
    expect((error as Error).message).toContain('unknown key id kabc');
    expect((error as Error).name).toBe('DecryptionError');
  });

  it('rejects malformed values without echoing them', () => {
    const valid = cipher.encrypt('Jane Doe', ROW_ID);
    // A value whose payload has base64url's own characters, spelled in standard base64 instead.
    let urlSafe = valid;
    while (!/[-_]/.test(payloadOf(urlSafe).toString('base64url'))) {
      urlSafe = cipher.encrypt('Jane Doe', ROW_ID);
    }
    const standardSpelling = urlSafe.replace(/[^.]*$/, (payload) =>
      payload.replaceAll('-', '+').replaceAll('_', '/'),
    );
    const malformed = [
      '',
      'Jane Doe',
      'v2.k1.AAAA',
      'v1.',
      'v1.k1',
      'v1..AAAA',
      'v1.k.1.AAAA',
      'v1.k1.',
      'v1.k1.not base64!',
      'v1.k1.AAAAA',
      `v1.k1.${randomBytes(27).toString('base64url')}`,
      `${valid}.extra`,
      valid.replace(/^v1\.k1\./, 'v1.k1+x.'),
      standardSpelling,
    ];
    for (const stored of malformed) {
      const error = thrownBy(() => cipher.decrypt(stored, ROW_ID));
      expect(error, stored).toBeInstanceOf(DecryptionError);
      expect((error as Error).message, stored).toContain('malformed value');
      if (stored.length > 3) expect((error as Error).message).not.toContain(stored);
    }
  });

  it('reports key ids and rejects malformed values in keyIdOf', () => {
    expect(cipher.keyIdOf(cipher.encrypt('Jane Doe', ROW_ID))).toBe('k1');
    expect(cipher.keyIdOf('v1.other-Key_9.AAAA')).toBe('other-Key_9');
    for (const stored of ['Jane Doe', 'v1.k1', 'v1..AAAA', `v1.${'k'.repeat(33)}.AAAA`]) {
      expect(() => cipher.keyIdOf(stored)).toThrow(DecryptionError);
      expect(() => cipher.isOnActiveKey(stored)).toThrow(DecryptionError);
    }
  });

  it('rotates: old values stay readable, re-encryption moves them to the active key', () => {
    const ringA = new FieldCipher(ringOf(['k1', key1]));
    const ringB = new FieldCipher(ringOf(['k2', key2], ['k1', key1]));
    expect(ringA.activeKeyId).toBe('k1');
    expect(ringB.activeKeyId).toBe('k2');

    const old = ringA.encrypt('Jane Doe', ROW_ID);
    expect(ringA.isOnActiveKey(old)).toBe(true);
    expect(ringB.keyIdOf(old)).toBe('k1');
    expect(ringB.isOnActiveKey(old)).toBe(false);
    expect(ringB.decrypt(old, ROW_ID)).toBe('Jane Doe');

    const rewritten = ringB.encrypt(ringB.decrypt(old, ROW_ID), ROW_ID);
    expect(ringB.keyIdOf(rewritten)).toBe('k2');
    expect(ringB.isOnActiveKey(rewritten)).toBe(true);
    expect(ringB.decrypt(rewritten, ROW_ID)).toBe('Jane Doe');
    // Ring A has never seen k2.
    expect(() => ringA.decrypt(rewritten, ROW_ID)).toThrow('unknown key id k2');
  });

  it('rejects inconsistent key rings', () => {
    expect(() => new FieldCipher({ activeKeyId: 'k9', keys: new Map([['k1', key1]]) })).toThrow(
      TypeError,
    );
    expect(() => new FieldCipher(ringOf(['k1', randomBytes(16)]))).toThrow(TypeError);
    expect(() => new FieldCipher(ringOf(['k.1', key1]))).toThrow(TypeError);
  });

  it('is unaffected by later changes to the ring buffers', () => {
    const key = Buffer.from(key1);
    const own = new FieldCipher(ringOf(['k1', key]));
    const stored = own.encrypt('Jane Doe', ROW_ID);
    key.fill(0);
    expect(own.decrypt(stored, ROW_ID)).toBe('Jane Doe');
  });
});

describe('FieldCipher, values as bytes (sealBytes)', () => {
  it('round-trips any bytes bound to their associated data, as b1.<keyId>. and raw bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string(), (plaintext, data) => {
        const sealed = cipher.sealBytes(Buffer.from(plaintext), data);
        expect(sealed.toString('latin1', 0, 6)).toBe('b1.k1.');
        // Nonce, ciphertext and tag as bytes: no base64, so 6 + 12 + n + 16 bytes.
        expect(sealed.length).toBe(6 + 12 + plaintext.length + 16);
        expect(cipher.openBytes(sealed, data).equals(Buffer.from(plaintext))).toBe(true);
      }),
    );
  });

  it('never holds the plaintext', () => {
    const name = 'Zéphyrine Okonkwo-Bérard';
    const sealed = cipher.sealBytes(Buffer.from(`{"full_name":"${name}"}`), 'cache:u:entry');
    expect(sealed.includes(name)).toBe(false);
    expect(sealed.includes('full_name')).toBe(false);
  });

  it('refuses other associated data, tampered bytes, and values it did not seal', () => {
    const sealed = cipher.sealBytes(Buffer.from('a page'), 'cache:u1:entry');
    expect(() => cipher.openBytes(sealed, 'cache:u2:entry')).toThrow(
      new DecryptionError('cannot decrypt with key k1: authentication failed'),
    );
    for (let index = 6; index < sealed.length; index += 1) {
      const tampered = Buffer.from(sealed);
      tampered[index] = tampered[index]! ^ 1;
      expect(() => cipher.openBytes(tampered, 'cache:u1:entry')).toThrow(DecryptionError);
    }
    // The text format (what earlier versions cached), a bare payload, nothing, an unknown key.
    const foreign = [
      Buffer.from(cipher.encrypt('a page', 'cache:u1:entry')),
      sealed.subarray(6),
      Buffer.alloc(0),
      Buffer.from('b1.'),
      Buffer.from(`b1.${'k'.repeat(40)}.${'x'.repeat(40)}`),
      sealed.subarray(0, 6 + 27),
    ];
    for (const value of foreign) {
      expect(() => cipher.openBytes(value, 'cache:u1:entry')).toThrow(DecryptionError);
    }
    const other = new FieldCipher(ringOf(['kabc', key2])).sealBytes(Buffer.from('x'), 'd');
    expect(() => cipher.openBytes(other, 'd')).toThrow(
      new DecryptionError('cannot decrypt: unknown key id kabc'),
    );
  });

  it('opens values sealed under an older key of the ring', () => {
    const sealed = cipher.sealBytes(Buffer.from('a page'), 'd');
    const rotated = new FieldCipher(ringOf(['k2', key2], ['k1', key1]));
    expect(rotated.openBytes(sealed, 'd').toString()).toBe('a page');
    expect(rotated.sealBytes(Buffer.from('a page'), 'd').toString('latin1', 0, 6)).toBe('b1.k2.');
  });
});

describe('generateKeyBase64', () => {
  it('generates distinct 32-byte base64 keys', () => {
    const a = generateKeyBase64();
    const b = generateKeyBase64();
    expect(a).not.toBe(b);
    expect(Buffer.from(a, 'base64')).toHaveLength(32);
    expect(a).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });
});

describe('parseKeyRing', () => {
  const keyA = randomBytes(32);
  const keyB = randomBytes(32);
  const a64 = keyA.toString('base64');
  const b64 = keyB.toString('base64');

  function configError(input: Parameters<typeof parseKeyRing>[0]): KeyConfigError {
    const error = thrownBy(() => parseKeyRing(input));
    expect(error).toBeInstanceOf(KeyConfigError);
    return error as KeyConfigError;
  }

  it('returns undefined when neither variable is set', () => {
    expect(parseKeyRing({})).toBeUndefined();
    expect(parseKeyRing({ secretKey: undefined, encryptionKeys: undefined })).toBeUndefined();
    expect(parseKeyRing({ secretKey: '', encryptionKeys: '  ' })).toBeUndefined();
  });

  it('accepts SECRET_KEY as base64 with a derived, stable key id', () => {
    const ring = parseKeyRing({ secretKey: a64 })!;
    expect(ring.activeKeyId).toBe(expectedKeyId(keyA));
    expect(ring.activeKeyId).toMatch(/^k[0-9a-f]{8}$/);
    expect([...ring.keys.keys()]).toEqual([ring.activeKeyId]);
    expect(ring.keys.get(ring.activeKeyId)).toEqual(keyA);
    expect(parseKeyRing({ secretKey: ` ${a64}\n` })!.activeKeyId).toBe(ring.activeKeyId);
  });

  it('accepts a Fernet-style SECRET_KEY (base64url with padding) and unpadded base64url', () => {
    // Pick bytes whose encoding uses '-' and '_' so the url-safe alphabet is really exercised.
    let key = randomBytes(32);
    while (!/[-_]/.test(key.toString('base64url'))) key = randomBytes(32);
    const fernet = key.toString('base64').replaceAll('+', '-').replaceAll('/', '_');
    expect(fernet).toHaveLength(44);
    expect(fernet.endsWith('=')).toBe(true);

    for (const secretKey of [fernet, key.toString('base64url')]) {
      const ring = parseKeyRing({ secretKey })!;
      expect(ring.activeKeyId).toBe(expectedKeyId(key));
      expect(ring.keys.get(ring.activeKeyId)).toEqual(key);
    }
  });

  it('rejects SECRET_KEY values of the wrong length', () => {
    for (const length of [16, 31, 33, 64]) {
      const error = configError({ secretKey: randomBytes(length).toString('base64') });
      expect(error.variable).toBe('SECRET_KEY');
      expect(error.message).toContain(`decodes to ${length}`);
    }
  });

  it('rejects garbage SECRET_KEY values', () => {
    for (const secretKey of [
      'not a key',
      'changeme',
      `${a64.slice(0, 20)}*${a64.slice(21)}`,
      // Mixed alphabets are a corrupted paste, not a key.
      `+-${a64.slice(2)}`,
      `${a64.slice(0, 43)}==`,
      a64.slice(0, 41),
      a64.replace('=', '==='),
    ]) {
      const error = configError({ secretKey });
      expect(error.variable).toBe('SECRET_KEY');
      expect(error.message).not.toContain(secretKey);
    }
  });

  it('parses ENCRYPTION_KEYS with the first entry active, in order', () => {
    const ring = parseKeyRing({ encryptionKeys: `k2:${b64}, k1:${keyA.toString('base64url')}` })!;
    expect(ring.activeKeyId).toBe('k2');
    // Each key also answers to its derived id (see the SECRET_KEY tests below).
    expect([...ring.keys.keys()]).toEqual(['k2', 'k1', expectedKeyId(keyB), expectedKeyId(keyA)]);
    expect(ring.keys.get('k2')).toEqual(keyB);
    expect(ring.keys.get('k1')).toEqual(keyA);
  });

  it('accepts ids made of the allowed characters, up to 32 long', () => {
    const id = `Az09_-${'x'.repeat(26)}`;
    expect(parseKeyRing({ encryptionKeys: `${id}:${a64}` })!.activeKeyId).toBe(id);
  });

  it('rejects bad ENCRYPTION_KEYS entries', () => {
    const cases = {
      'duplicate ids': `k1:${a64},k1:${b64}`,
      'empty id': `:${a64}`,
      'id with a dot': `k.1:${a64}`,
      'id with a space inside': `k 1:${a64}`,
      'id too long': `${'k'.repeat(33)}:${a64}`,
      'missing id': a64,
      'empty entry in the middle': `k1:${a64},,k2:${b64}`,
      'trailing comma': `k1:${a64},`,
      'leading comma': `,k1:${a64}`,
      'only commas': ',',
      'empty key': 'k1:',
      'short key': `k1:${randomBytes(16).toString('base64')}`,
      'garbage key': 'k1:not-a-key!',
    };
    for (const [name, encryptionKeys] of Object.entries(cases)) {
      const error = configError({ encryptionKeys });
      expect(error.variable, name).toBe('ENCRYPTION_KEYS');
    }
    expect(configError({ encryptionKeys: cases['duplicate ids'] }).message).toContain('"k1"');
    expect(configError({ encryptionKeys: cases['trailing comma'] }).message).toContain('entry 2');
  });

  it('appends SECRET_KEY as a decrypt-only key when both are set', () => {
    const ring = parseKeyRing({ secretKey: a64, encryptionKeys: `k2:${b64}` })!;
    const secretId = expectedKeyId(keyA);
    expect(ring.activeKeyId).toBe('k2');
    expect([...ring.keys.keys()]).toEqual(['k2', expectedKeyId(keyB), secretId]);
    expect(ring.keys.get(secretId)).toEqual(keyA);

    // Values written while SECRET_KEY was the only key stay readable after the switch.
    const before = new FieldCipher(parseKeyRing({ secretKey: a64 })!);
    const after = new FieldCipher(ring);
    const stored = before.encrypt('Jane Doe', ROW_ID);
    expect(after.decrypt(stored, ROW_ID)).toBe('Jane Doe');
    expect(after.isOnActiveKey(stored)).toBe(false);
  });

  it('does not duplicate SECRET_KEY when the ring already holds the same bytes', () => {
    const ring = parseKeyRing({
      secretKey: keyA.toString('base64url'),
      encryptionKeys: `k2:${b64},old:${a64}`,
    })!;
    expect([...ring.keys.keys()]).toEqual(['k2', 'old', expectedKeyId(keyB), expectedKeyId(keyA)]);
  });

  it('keeps values written under SECRET_KEY readable once that key moves into the ring', () => {
    const stored = new FieldCipher(parseKeyRing({ secretKey: a64 })!).encrypt('Ama', ROW_ID);
    const ring = parseKeyRing({ encryptionKeys: `new:${b64},old:${a64}` })!;
    expect(new FieldCipher(ring).decrypt(stored, ROW_ID)).toBe('Ama');
  });

  it('validates both variables when both are set', () => {
    expect(configError({ secretKey: 'nope', encryptionKeys: `k2:${b64}` }).variable).toBe(
      'SECRET_KEY',
    );
    expect(configError({ secretKey: a64, encryptionKeys: 'k2:nope' }).variable).toBe(
      'ENCRYPTION_KEYS',
    );
  });

  it('rejects a ring id that collides with the derived SECRET_KEY id for other bytes', () => {
    const error = configError({
      secretKey: a64,
      encryptionKeys: `k2:${b64},${expectedKeyId(keyA)}:${randomBytes(32).toString('base64')}`,
    });
    expect(error.variable).toBe('ENCRYPTION_KEYS');
  });

  it('names the variable and how to generate a key, never the key material', () => {
    const shortKey = randomBytes(20);
    const inputs: Parameters<typeof parseKeyRing>[0][] = [
      { secretKey: shortKey.toString('base64') },
      { secretKey: `${a64.slice(0, 30)}!` },
      { encryptionKeys: `k1:${shortKey.toString('base64')}` },
      { encryptionKeys: `${a64}` },
      // An id too long to be valid, made of key material: it must not be echoed either.
      { encryptionKeys: `${a64.slice(0, 40)}:${a64}` },
      { encryptionKeys: `k1:${a64},k1:${b64}` },
      { encryptionKeys: `k1:${a64};k2:${b64}` },
    ];
    for (const input of inputs) {
      const error = configError(input);
      const variable = input.secretKey === undefined ? 'ENCRYPTION_KEYS' : 'SECRET_KEY';
      expect(error.variable).toBe(variable);
      expect(error.name).toBe('KeyConfigError');
      expect(error.message).toContain(variable);
      expect(error.message).toContain('openssl rand -base64 32');
      const material = [shortKey, keyA, keyB].flatMap((key) => [
        key.toString('base64').slice(0, 12),
        key.toString('base64url').slice(0, 12),
        key.toString('hex').slice(0, 12),
      ]);
      for (const fragment of material) expect(error.message).not.toContain(fragment);
    }
  });
});

describe('loadOrCreateDevKeyRing', () => {
  let tempDir: string;

  beforeEach(async () => {
    tempDir = await mkdtemp(path.join(os.tmpdir(), 'fido-crypto-'));
  });

  afterEach(async () => {
    await rm(tempDir, { recursive: true, force: true });
  });

  it('creates the key file once and reuses it', async () => {
    const dataDir = path.join(tempDir, 'nested', 'data');
    const first = await loadOrCreateDevKeyRing(dataDir);
    const second = await loadOrCreateDevKeyRing(dataDir);

    expect(second.activeKeyId).toBe(first.activeKeyId);
    expect(first.activeKeyId).toMatch(/^k[0-9a-f]{8}$/);
    const key = first.keys.get(first.activeKeyId)!;
    expect(key).toHaveLength(32);
    expect(second.keys.get(second.activeKeyId)).toEqual(key);
    expect(first.activeKeyId).toBe(expectedKeyId(key));

    const file = path.join(dataDir, 'encryption.key');
    const contents = await readFile(file, 'utf8');
    expect(contents).toBe(`${key.toString('base64')}\n`);
    if (process.platform !== 'win32') {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    }
  });

  it('gives concurrent creators the same key', async () => {
    const rings = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateDevKeyRing(tempDir)),
    );
    expect(new Set(rings.map((ring) => ring.activeKeyId)).size).toBe(1);
  });

  it('reads an existing key file, matching the SECRET_KEY id for the same key', async () => {
    const key = generateKeyBase64();
    await writeFile(path.join(tempDir, 'encryption.key'), `${key}\n`);
    const ring = await loadOrCreateDevKeyRing(tempDir);
    expect(ring.activeKeyId).toBe(parseKeyRing({ secretKey: key })!.activeKeyId);
  });

  it('refuses a corrupt key file instead of replacing it', async () => {
    const file = path.join(tempDir, 'encryption.key');
    await writeFile(file, 'corrupt\n');
    await expect(loadOrCreateDevKeyRing(tempDir)).rejects.toThrow(/encryption\.key is invalid/);
    expect(await readFile(file, 'utf8')).toBe('corrupt\n');
  });
});
