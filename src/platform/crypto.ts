/**
 * Field-level encryption for personal data at rest (AES-256-GCM with a key ring).
 *
 * Stored format: `v1.<keyId>.<base64url(nonce || ciphertext || authTag)>`. The key id travels with
 * the value so keys can rotate without a flag day: new writes use the active key, older values
 * stay readable for as long as their key remains in the ring. Values kept as bytes (`sealBytes`)
 * are `b1.<keyId>.` then the same three parts, not encoded.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

const KEY_BYTES = 32;
// 96 bits is the nonce size GCM is specified for; other sizes get hashed into a weaker IV.
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT_PREFIX = 'v1.';
/** Binary values (`sealBytes`) start with this, then the key id and a dot, as text. */
const BINARY_PREFIX = 'b1.';
const ALGORITHM = 'aes-256-gcm';
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
// One alphabet per key: a mix of both is more likely a corrupted paste than a real key.
const BASE64_KEY_PATTERN = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)(={0,2})$/;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/;
// In a /u regex a surrogate pair is one code point, so this only matches unpaired halves.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const GENERATE_HINT = 'Generate a key with: openssl rand -base64 32';
const DEV_KEY_FILE = 'encryption.key';

/** Invalid key material in configuration. Messages never echo the configured value. */
export class KeyConfigError extends Error {
  override readonly name = 'KeyConfigError';
  readonly variable: string;

  constructor(variable: 'SECRET_KEY' | 'ENCRYPTION_KEYS', problem: string) {
    super(`${variable} ${problem}. ${GENERATE_HINT}`);
    this.variable = variable;
  }
}

export interface KeyRing {
  /** Id of the key used for new encryptions; always present in `keys`. */
  readonly activeKeyId: string;
  /** All keys that may decrypt, in priority order (the active key first). */
  readonly keys: ReadonlyMap<string, Buffer>;
}

/** A value could not be decrypted. The message names the key id and the reason, nothing else. */
export class DecryptionError extends Error {
  override readonly name = 'DecryptionError';
}

/** A fresh random key in the format SECRET_KEY, ENCRYPTION_KEYS entries and the dev key file use. */
export function generateKeyBase64(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/**
 * Derived rather than configured so that a single SECRET_KEY (or the dev key file) needs no id,
 * yet the same key always gets the same id: values stay decryptable when that key later moves
 * into a ring as a decrypt-only entry.
 */
function deriveKeyId(key: Buffer): string {
  const digest = createHash('sha256').update('fido-key-id:', 'utf8').update(key).digest('hex');
  return `k${digest.slice(0, 8)}`;
}

/** Returns the key bytes, or a description of what is wrong that never includes the input. */
function decodeKey(text: string): Buffer | string {
  const match = BASE64_KEY_PATTERN.exec(text);
  if (match === null) {
    return 'contains characters outside the base64/base64url alphabet';
  }
  const padding = match[1] ?? '';
  const bodyLength = text.length - padding.length;
  // Buffer.from silently drops what it cannot decode, so reject impossible lengths here.
  if (bodyLength % 4 === 1 || (padding.length > 0 && text.length % 4 !== 0)) {
    return 'is not correctly padded base64';
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== KEY_BYTES) {
    return `must decode to exactly ${KEY_BYTES} bytes (it decodes to ${key.length})`;
  }
  return key;
}

function parseSecretKey(value: string): Buffer {
  const key = decodeKey(value);
  if (typeof key === 'string') {
    throw new KeyConfigError(
      'SECRET_KEY',
      `is not a valid key: it ${key}; expected 32 random bytes, base64 or base64url encoded`,
    );
  }
  return key;
}

function parseEncryptionKeys(value: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  const entries = value.split(',');
  entries.forEach((rawEntry, index) => {
    // Positions rather than contents identify bad entries, since an entry may hold a key.
    const where = `entry ${index + 1} of ${entries.length}`;
    const entry = rawEntry.trim();
    if (entry === '') {
      throw new KeyConfigError(
        'ENCRYPTION_KEYS',
        `${where} is empty; expected "id:base64key,id:base64key,..." with the active key first`,
      );
    }
    const colon = entry.indexOf(':');
    if (colon < 0) {
      throw new KeyConfigError(
        'ENCRYPTION_KEYS',
        `${where} has no "id:" prefix; expected "id:base64key,id:base64key,..."`,
      );
    }
    const id = entry.slice(0, colon).trim();
    if (!KEY_ID_PATTERN.test(id)) {
      throw new KeyConfigError(
        'ENCRYPTION_KEYS',
        `${where} has an invalid key id; ids are 1-32 characters of A-Z a-z 0-9 _ -`,
      );
    }
    if (keys.has(id)) {
      throw new KeyConfigError(
        'ENCRYPTION_KEYS',
        `${where} repeats key id "${id}"; ids must be unique`,
      );
    }
    const key = decodeKey(entry.slice(colon + 1).trim());
    if (typeof key === 'string') {
      throw new KeyConfigError('ENCRYPTION_KEYS', `${where} (id "${id}"): the key ${key}`);
    }
    keys.set(id, key);
  });
  return keys;
}

/**
 * Builds the key ring from configuration values; `undefined` when neither is set, leaving the
 * caller to choose between a development key file and refusing to start. Blank values count as
 * unset, because `SECRET_KEY=` in an env file means "not configured" rather than "empty key".
 */
export function parseKeyRing(input: {
  secretKey?: string | undefined;
  encryptionKeys?: string | undefined;
}): KeyRing | undefined {
  const secretText = input.secretKey?.trim() ?? '';
  const ringText = input.encryptionKeys?.trim() ?? '';
  const secret = secretText === '' ? undefined : parseSecretKey(secretText);

  if (ringText === '') {
    if (secret === undefined) return undefined;
    const id = deriveKeyId(secret);
    return { activeKeyId: id, keys: new Map([[id, secret]]) };
  }

  const keys = parseEncryptionKeys(ringText);
  const [activeKeyId] = keys.keys();
  if (activeKeyId === undefined) {
    // Unreachable: split(',') yields at least one entry and empty entries are rejected.
    throw new KeyConfigError('ENCRYPTION_KEYS', 'contains no keys');
  }

  // Values written under SECRET_KEY or the development key file carry the key's derived id. Every
  // key also answers to that id, so moving a key into the ring under any name (and SECRET_KEY
  // kept beside the ring as decrypt-only) leaves its values readable.
  for (const key of secret === undefined ? [...keys.values()] : [...keys.values(), secret]) {
    const derivedId = deriveKeyId(key);
    const existing = keys.get(derivedId);
    if (existing === undefined) {
      keys.set(derivedId, key);
    } else if (!existing.equals(key)) {
      throw new KeyConfigError(
        'ENCRYPTION_KEYS',
        `uses key id "${derivedId}" for a different key than the one that id is derived from; rename that entry`,
      );
    }
  }
  return { activeKeyId, keys };
}

function isErrnoException(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function devRingFromFile(file: string, contents: string): KeyRing {
  const key = decodeKey(contents.trim());
  if (typeof key === 'string') {
    throw new Error(
      `The development key file ${file} is invalid: its content ${key}. ` +
        'Restore it from a backup, or delete it to start over with a new key ' +
        '(values encrypted with the old key then become unreadable).',
    );
  }
  const id = deriveKeyId(key);
  return { activeKeyId: id, keys: new Map([[id, key]]) };
}

async function readWinnersKeyFile(file: string): Promise<KeyRing> {
  // The winning process creates the file before it writes the key, so a reader that arrives in
  // between sees an empty or partial file; give it a moment instead of failing the startup.
  const attempts = 50;
  for (let attempt = 1; ; attempt++) {
    const contents = await readFile(file, 'utf8');
    try {
      return devRingFromFile(file, contents);
    } catch (error) {
      if (attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Development only: a key kept in `<dataDir>/encryption.key`, created on first use. Production
 * must configure SECRET_KEY or ENCRYPTION_KEYS instead, since losing this file loses the data.
 */
export async function loadOrCreateDevKeyRing(dataDir: string): Promise<KeyRing> {
  const file = path.join(dataDir, DEV_KEY_FILE);
  try {
    return devRingFromFile(file, await readFile(file, 'utf8'));
  } catch (error) {
    if (!isErrnoException(error, 'ENOENT')) throw error;
  }

  await mkdir(dataDir, { recursive: true });
  const key = generateKeyBase64();
  try {
    // 'wx' so that two processes starting together cannot each write, and use, a different key.
    await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (!isErrnoException(error, 'EEXIST')) throw error;
    return readWinnersKeyFile(file);
  }
  return devRingFromFile(file, key);
}

interface ParsedValue {
  readonly keyId: string;
  readonly payload: string;
}

function malformed(reason: string): DecryptionError {
  return new DecryptionError(`cannot decrypt: malformed value (${reason})`);
}

/** The key id and the payload (not yet decoded: see `decodePayload`) of a stored value. */
function parseParts(stored: string): ParsedValue {
  if (!stored.startsWith(FORMAT_PREFIX)) {
    throw malformed(`expected prefix "${FORMAT_PREFIX}"`);
  }
  const dot = stored.indexOf('.', FORMAT_PREFIX.length);
  if (dot < 0) throw malformed('missing payload');
  const keyId = stored.slice(FORMAT_PREFIX.length, dot);
  if (!KEY_ID_PATTERN.test(keyId)) throw malformed('invalid key id');
  const payload = stored.slice(dot + 1);
  if (payload.length === 0 || payload.length % 4 === 1) {
    throw malformed('payload is not base64url');
  }
  return { keyId, payload };
}

/** `parseParts`, with the payload's alphabet checked too (for callers that do not decode it). */
function parseStored(stored: string): ParsedValue {
  const parts = parseParts(stored);
  if (!BASE64URL_PATTERN.test(parts.payload)) throw malformed('payload is not base64url');
  return parts;
}

/**
 * The payload's bytes. Buffer.from skips characters it cannot decode, and each skipped one makes
 * the result shorter than the payload's length implies (for lengths that are not 1 mod 4, which
 * `parseParts` refuses), so a length check stands in for checking the alphabet first: on a cached
 * history page (tens of kilobytes) that regular expression cost more than the decryption. The
 * decoder also reads standard base64's `+` and `/`, which base64url does not have: refused apart.
 */
function decodePayload(payload: string): Buffer {
  const bytes = Buffer.from(payload, 'base64url');
  if (
    bytes.length !== Math.floor((payload.length * 3) / 4) ||
    payload.includes('+') ||
    payload.includes('/')
  ) {
    throw malformed('payload is not base64url');
  }
  return bytes;
}

/**
 * Encrypts and decrypts single text fields. The associated data binds a ciphertext to its row
 * (pass the row id), so a value copied into another row fails authentication instead of
 * silently decrypting there.
 */
export class FieldCipher {
  readonly #keys: ReadonlyMap<string, KeyObject>;
  readonly #activeKeyId: string;
  readonly #activeKey: KeyObject;
  readonly #activePrefix: string;
  readonly #activeBinaryPrefix: Buffer;
  /** Per-key HMAC keys for digests, derived so that no key serves two algorithms. */
  readonly #macKeys: ReadonlyMap<string, Buffer>;

  constructor(ring: KeyRing) {
    const keys = new Map<string, KeyObject>();
    for (const [id, key] of ring.keys) {
      // Ids end up inside stored values, where a dot or other character would break parsing.
      if (!KEY_ID_PATTERN.test(id)) {
        throw new TypeError('Key ring contains an invalid key id');
      }
      if (key.length !== KEY_BYTES) {
        throw new TypeError(`Key ring key "${id}" is not ${KEY_BYTES} bytes`);
      }
      // KeyObjects copy the bytes, so later changes to the caller's buffers cannot affect us.
      keys.set(id, createSecretKey(key));
    }
    const active = keys.get(ring.activeKeyId);
    if (active === undefined) {
      throw new TypeError(`Key ring active key "${ring.activeKeyId}" is not in the ring`);
    }
    this.#keys = keys;
    this.#activeKeyId = ring.activeKeyId;
    this.#activeKey = active;
    this.#activePrefix = `${FORMAT_PREFIX}${ring.activeKeyId}.`;
    this.#activeBinaryPrefix = Buffer.from(`${BINARY_PREFIX}${ring.activeKeyId}.`, 'latin1');
    this.#macKeys = new Map(
      [...keys].map(([id, key]) => [
        id,
        Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'fido/digest/v1', KEY_BYTES)),
      ]),
    );
  }

  get activeKeyId(): string {
    return this.#activeKeyId;
  }

  /** What every value written now starts with: values without it are on an older key. */
  get activePrefix(): string {
    return this.#activePrefix;
  }

  /**
   * A keyed digest (HMAC-SHA256) of `data`, for storing a fingerprint of text that holds
   * personal data: unlike a plain hash, it cannot be reversed by trying likely names.
   */
  digest(data: string): string {
    const macKey = this.#macKeys.get(this.#activeKeyId) as Buffer;
    return this.#activePrefix + createHmac('sha256', macKey).update(data).digest('base64url');
  }

  /** Whether `stored` is `digest(data)` under any key of the ring. */
  matchesDigest(stored: string, data: string): boolean {
    const { keyId, payload } = parseParts(stored);
    const actual = decodePayload(payload);
    const macKey = this.#macKeys.get(keyId);
    if (macKey === undefined) return false;
    const expected = createHmac('sha256', macKey).update(data).digest();
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }

  encrypt(plaintext: string, associatedData: string): string {
    // UTF-8 encoding would turn a lone surrogate into U+FFFD, so the value would not round-trip.
    if (LONE_SURROGATE.test(plaintext)) {
      throw new TypeError('Cannot encrypt a string containing an unpaired surrogate');
    }
    return this.#activePrefix + this.#seal(plaintext, associatedData).toString('base64url');
  }

  decrypt(stored: string, associatedData: string): string {
    const { keyId, payload } = parseParts(stored);
    return this.#open(keyId, decodePayload(payload), associatedData).toString('utf8');
  }

  /**
   * `encrypt` for bytes, into bytes: `b1.<keyId>.` then the nonce, the ciphertext and the tag,
   * with no base64 step. For values kept as binary (cached history pages, tens of kilobytes).
   */
  sealBytes(plaintext: Buffer, associatedData: string): Buffer {
    return Buffer.concat([this.#activeBinaryPrefix, this.#seal(plaintext, associatedData)]);
  }

  /** The bytes `sealBytes` sealed, bound to the same associated data. */
  openBytes(sealed: Buffer, associatedData: string): Buffer {
    // A key id is at most 32 characters: the dot after it is looked for there, not in the payload.
    const dot = sealed.subarray(0, BINARY_PREFIX.length + 33).indexOf(0x2e, BINARY_PREFIX.length);
    if (
      sealed.length <= BINARY_PREFIX.length ||
      sealed.toString('latin1', 0, BINARY_PREFIX.length) !== BINARY_PREFIX ||
      dot < 0
    ) {
      throw malformed(`expected prefix "${BINARY_PREFIX}<key id>."`);
    }
    const keyId = sealed.toString('latin1', BINARY_PREFIX.length, dot);
    if (!KEY_ID_PATTERN.test(keyId)) throw malformed('invalid key id');
    return this.#open(keyId, sealed.subarray(dot + 1), associatedData);
  }

  /** The nonce, the ciphertext and the tag, under the active key. */
  #seal(plaintext: string | Buffer, associatedData: string): Buffer {
    // Random 96-bit nonces stay within NIST's collision bound for up to 2^32 encryptions per
    // key; rotating keys keeps us far below that.
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#activeKey, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const body =
      typeof plaintext === 'string' ? cipher.update(plaintext, 'utf8') : cipher.update(plaintext);
    const rest = cipher.final();
    return Buffer.concat([nonce, body, rest, cipher.getAuthTag()]);
  }

  /** The plaintext of `sealed` (nonce, ciphertext, tag) under the key `keyId`. */
  #open(keyId: string, sealed: Buffer, associatedData: string): Buffer {
    const key = this.#keys.get(keyId);
    if (key === undefined) {
      throw new DecryptionError(`cannot decrypt: unknown key id ${keyId}`);
    }
    if (sealed.length < NONCE_BYTES + TAG_BYTES) {
      throw malformed('payload too short');
    }
    const decipher = createDecipheriv(ALGORITHM, key, sealed.subarray(0, NONCE_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const body = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
    let rest: Buffer;
    try {
      rest = decipher.final();
    } catch {
      // Wrong key, wrong row (associated data) and tampering are indistinguishable by design.
      throw new DecryptionError(`cannot decrypt with key ${keyId}: authentication failed`);
    }
    return rest.length === 0 ? body : Buffer.concat([body, rest]);
  }

  keyIdOf(stored: string): string {
    return parseStored(stored).keyId;
  }

  /** False means a re-encryption pass should rewrite the value under the active key. */
  isOnActiveKey(stored: string): boolean {
    return parseStored(stored).keyId === this.#activeKeyId;
  }
}
