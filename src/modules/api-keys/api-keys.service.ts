import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Db } from '../../db/client.js';
import { AppError } from '../../platform/errors.js';
import { SCOPES, type Scope } from '../../platform/auth.js';
import {
  findApiKey,
  hasUsableApiKey,
  insertApiKey,
  listApiKeys,
  revokeApiKey,
  touchApiKey,
  type ApiKeyRow,
} from './api-keys.repository.js';
import {
  API_KEY_CACHE_ENTRIES_MAX,
  API_KEY_CACHE_TTL_MS,
  LAST_USED_RESOLUTION_MS,
} from './api-keys.limits.js';

/**
 * Keys look like `fido_<id>_<secret>`: the prefix makes a leaked key easy to recognise (secret
 * scanners, logs), the id finds its row without scanning, and the secret (256 random bits) is
 * compared in constant time against its stored SHA-256 (or, for a few seconds after a database
 * read, against the secret that read verified: see `verified` below). A slow password hash would
 * buy nothing: nobody can guess 256 random bits, and it would cost CPU on every request.
 */
const KEY_PREFIX = 'fido_';
const KEY_PATTERN = /^fido_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;
const ID_BYTES = 10;
const SECRET_BYTES = 32;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export const apiKeyNotFound = (id: string) =>
  new AppError('API_KEY_NOT_FOUND', `API key ${id} not found`);

export interface NewApiKey {
  name: string;
  scopes: readonly Scope[];
  expiresAt?: Date | null | undefined;
}

export type ApiKeyStatus = 'active' | 'revoked' | 'expired';

/** What a key check found: the key's row, or why it cannot authenticate. */
export type KeyCheck =
  | { ok: true; row: ApiKeyRow }
  | { ok: false; reason: 'malformed' | 'unknown' | 'revoked' | 'expired' };

export type ApiKeysService = ReturnType<typeof createApiKeysService>;

export function createApiKeysService(deps: { db: Db; now?: () => Date }) {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());
  // A key read from the database and its secret as last presented, for API_KEY_CACHE_TTL_MS from
  // that read (never extended by use: a revocation elsewhere is seen within that time). The same
  // secret presented again is compared as is, in constant time, instead of hashed: the hash per
  // request cost ~4% of a cached read's CPU.
  const verified = new LRUCache<string, { row: ApiKeyRow; secret: Buffer }>({
    max: API_KEY_CACHE_ENTRIES_MAX,
    ttl: API_KEY_CACHE_TTL_MS,
  });
  const lastTouched = new Map<string, number>();
  /** Called after a key is created in this process (it may close open development mode). */
  const createdListeners: (() => void)[] = [];

  function statusOf(row: ApiKeyRow, at = now()): ApiKeyStatus {
    if (row.revokedAt) return 'revoked';
    if (row.expiresAt && row.expiresAt <= at) return 'expired';
    return 'active';
  }

  async function create(input: NewApiKey): Promise<{ row: ApiKeyRow; key: string }> {
    const id = base32(randomBytes(ID_BYTES));
    const secret = randomBytes(SECRET_BYTES).toString('base64url');
    const row = await insertApiKey(db, {
      id,
      name: input.name,
      scopes: [...new Set(input.scopes)].sort((a, b) => SCOPES.indexOf(a) - SCOPES.indexOf(b)),
      secretHash: digest(secret),
      createdAt: now(),
      expiresAt: input.expiresAt ?? null,
    });
    for (const listener of createdListeners) listener();
    return { row, key: `${KEY_PREFIX}${id}_${secret}` };
  }

  async function get(id: string): Promise<ApiKeyRow> {
    const row = await findApiKey(db, id);
    if (!row) throw apiKeyNotFound(id);
    return row;
  }

  async function revoke(id: string): Promise<ApiKeyRow> {
    const row = await revokeApiKey(db, id, now());
    if (!row) throw apiKeyNotFound(id);
    verified.delete(id);
    return row;
  }

  /** Checks a presented key. Unknown, revoked and expired keys are told apart for logs only. */
  async function check(presented: string): Promise<KeyCheck> {
    const match = KEY_PATTERN.exec(presented);
    if (!match) return { ok: false, reason: 'malformed' };
    const [, id = '', secret = ''] = match;
    // KEY_PATTERN makes every secret 43 ASCII characters: equal lengths, as timingSafeEqual needs.
    const secretBytes = Buffer.from(secret, 'latin1');
    const known = verified.get(id);
    let row: ApiKeyRow;
    if (known && timingSafeEqual(known.secret, secretBytes)) {
      row = known.row;
    } else {
      const found = known?.row ?? (await findApiKey(db, id));
      if (!found) return { ok: false, reason: 'unknown' };
      const expected = Buffer.from(found.secretHash, 'base64url');
      const actual = Buffer.from(digest(secret), 'base64url');
      if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
        return { ok: false, reason: 'unknown' };
      }
      row = found;
      // Only a key whose secret matched is cached: a flood of made-up ids cannot evict real ones.
      // A row already cached keeps the time it was read.
      if (!known) verified.set(id, { row, secret: secretBytes });
    }
    const status = statusOf(row);
    if (status !== 'active') return { ok: false, reason: status };
    await touch(row.id);
    return { ok: true, row };
  }

  async function touch(id: string): Promise<void> {
    const at = now();
    const previous = lastTouched.get(id) ?? 0;
    if (at.getTime() - previous < LAST_USED_RESOLUTION_MS) return;
    lastTouched.set(id, at.getTime());
    if (lastTouched.size > API_KEY_CACHE_ENTRIES_MAX) lastTouched.clear();
    try {
      await touchApiKey(db, id, at);
    } catch {
      // Bookkeeping only: a request is never refused because last_used_at could not be written.
    }
  }

  return {
    create,
    get,
    revoke,
    check,
    statusOf,
    list: (after: string | undefined, limit: number) => listApiKeys(db, after, limit),
    hasUsable: () => hasUsableApiKey(db, now()),
    onCreated(listener: () => void) {
      createdListeners.push(listener);
    },
  };
}

function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

function base32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** True when `text` has the shape of an API key (so it is never mistaken for a JWT). */
export function looksLikeApiKey(text: string): boolean {
  return text.startsWith(KEY_PREFIX);
}
