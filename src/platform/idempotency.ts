import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FieldCipher } from './crypto.js';
import type { Db, DbTx } from '../db/client.js';
import {
  deleteExpiredIdempotencyKeys,
  findIdempotencyKey,
  saveIdempotencyKey,
  tryLockIdempotencyKey,
} from '../db/idempotency.repository.js';
import { idempotencyAssociatedData } from '../domain/associated-data.js';
import { IDEMPOTENCY_KEY_PATTERN } from '../domain/text.js';
import { AppError } from './errors.js';
import { sendJsonText } from './envelopes.js';

const KEY_PATTERN = new RegExp(IDEMPOTENCY_KEY_PATTERN);
/** Response headers worth replaying; the rest are per-delivery (date, request id). */
const REPLAYED_HEADERS = ['etag', 'location'] as const;

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  /** The exact bytes sent the first time: replays must be byte-identical. */
  body: string;
}

export interface IdempotencyOptions {
  db: Db;
  /** Stored responses hold personal data (names): they are encrypted like any other copy. */
  cipher: FieldCipher;
  ttlHours: number;
  /** Who the key belongs to; keys of different callers never collide. */
  scopeOf: (request: FastifyRequest) => string;
}

/**
 * Runs a write at most once per `Idempotency-Key` (the IETF httpapi draft, as Stripe does it).
 * The key row is written in the same database transaction as the effect, so after a crash there
 * is either both or neither. A concurrent request with the same key is refused with 409 rather
 * than queued, so a client never waits on a lock it cannot see.
 */
export function createIdempotency({ db, cipher, ttlHours, scopeOf }: IdempotencyOptions) {
  /**
   * Runs `effect` (or finds its stored outcome); the caller sends it with `sendOutcome`.
   * `atomic`: the effect is a single statement whose response was built before it runs, so
   * without a key it needs no transaction around it (and saves the BEGIN and COMMIT round trips).
   */
  async function execute(
    request: FastifyRequest,
    effect: (dbTx: DbTx | undefined) => Promise<StoredResponse>,
    { atomic = false }: { atomic?: boolean } = {},
  ): Promise<Outcome> {
    const key = readKey(request);
    if (key === undefined) {
      // Otherwise one transaction around the effect and its response: if building the response
      // fails, the write is rolled back rather than committed behind a 500.
      const stored = atomic
        ? await effect(undefined)
        : await db.transaction((dbTx) => effect(dbTx));
      return { stored, replayed: false };
    }

    const scope = scopeOf(request);
    const identity = requestIdentity(request);
    const outcome = await db.transaction(async (dbTx) => {
      // Its own statement, before the lookup: the lookup's snapshot must be taken after the lock
      // is held, or it could miss the row of a request that committed while this one waited.
      if (!(await tryLockIdempotencyKey(dbTx, scope, key))) {
        throw new AppError(
          'IDEMPOTENCY_KEY_IN_FLIGHT',
          'A request with this Idempotency-Key is still being processed; retry later',
        );
      }
      const now = new Date();
      const existing = await findIdempotencyKey(dbTx, scope, key, now);
      if (existing) {
        if (!cipher.matchesDigest(existing.requestHash, identity)) {
          throw new AppError(
            'IDEMPOTENCY_KEY_REUSED',
            'This Idempotency-Key was used with a different request',
          );
        }
        const stored: StoredResponse = {
          status: existing.responseStatus,
          headers: existing.responseHeaders,
          body: cipher.decrypt(existing.responseBody, idempotencyAssociatedData(scope, key)),
        };
        return { stored, replayed: true };
      }
      const stored = await effect(dbTx);
      // An expired row with the same key may still be there until the clean-up job runs.
      await saveIdempotencyKey(dbTx, {
        scope,
        key,
        // Keyed: the body holds a name, and a plain hash of it could be reversed by guessing.
        requestHash: cipher.digest(identity),
        responseStatus: stored.status,
        responseHeaders: stored.headers,
        responseBody: cipher.encrypt(stored.body, idempotencyAssociatedData(scope, key)),
        createdAt: now,
        expiresAt: new Date(now.getTime() + ttlHours * 3_600_000),
      });
      return { stored, replayed: false };
    });
    return outcome;
  }

  return { execute };
}

export type Idempotency = ReturnType<typeof createIdempotency>;

function readKey(request: FastifyRequest): string | undefined {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
    throw new AppError('VALIDATION_FAILED', 'Invalid Idempotency-Key header', [
      {
        loc: ['header', 'idempotency-key'],
        msg: 'Idempotency-Key should be 1–255 printable ASCII characters',
        type: 'value_error',
      },
    ]);
  }
  return raw;
}

/** The request's identity: method, path and query, and the body with its keys in a fixed order. */
function requestIdentity(request: FastifyRequest): string {
  return `${request.method}\n${request.url}\n${canonicalJson(request.body)}`;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export interface Outcome {
  stored: StoredResponse;
  /** True when this is the stored answer of an earlier request with the same key. */
  replayed: boolean;
}

export function sendOutcome(reply: FastifyReply, { stored, replayed }: Outcome): void {
  void reply.code(stored.status).headers(stored.headers);
  if (replayed) void reply.header('idempotent-replayed', 'true');
  void sendJsonText(reply, stored.body);
}

/** Picks the headers of a response that a replay must repeat. */
export function replayableHeaders(headers: Record<string, unknown>): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of REPLAYED_HEADERS) {
    const value = headers[name];
    if (typeof value === 'string') picked[name] = value;
  }
  return picked;
}

/** Rows deleted per statement, and statements per run: expiry never holds locks for long. */
const EXPIRY_BATCH_ROWS = 1_000;
const EXPIRY_BATCHES_MAX = 50;

/**
 * Deletes expired keys in bounded batches (a scheduled job). Expired keys are already ignored by
 * requests; this keeps the table from growing forever. Returns the number of keys deleted.
 */
export async function expireIdempotencyKeys(db: Db, now = new Date()): Promise<number> {
  let deleted = 0;
  for (let batch = 0; batch < EXPIRY_BATCHES_MAX; batch += 1) {
    const count = await deleteExpiredIdempotencyKeys(db, now, EXPIRY_BATCH_ROWS);
    deleted += count;
    if (count < EXPIRY_BATCH_ROWS) break;
  }
  return deleted;
}
