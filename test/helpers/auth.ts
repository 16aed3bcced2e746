import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { createApiKeysService } from '../../src/modules/api-keys/api-keys.service.js';
import type { Scope } from '../../src/platform/auth.js';
import type { TestDatabase } from './app.js';

/** The HS256 secret test apps verify user tokens with (at least 32 bytes, as config demands). */
export const TEST_JWT_SECRET = 'test-only-jwt-secret-0123456789abcdef';

/** Settings for an app that requires credentials and accepts test user tokens. */
export const REQUIRED_AUTH_ENV = { AUTH_MODE: 'required', JWT_SECRET: TEST_JWT_SECRET };

/** A signed user token for `userId`, valid for an hour unless told otherwise. */
export async function userToken(
  userId: string,
  options: { secret?: string; expiresIn?: string | number; audience?: string } = {},
): Promise<string> {
  let jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h');
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}

/**
 * A key made straight in the database, as the CLI makes one. `revoked` and `expired` keys are
 * made so before the app ever sees them.
 */
export async function createKey(
  database: TestDatabase,
  scopes: readonly Scope[],
  options: { revoked?: boolean; expired?: boolean; name?: string } = {},
): Promise<{ id: string; key: string }> {
  const service = createApiKeysService({ db: database.handle.db });
  const { row, key } = await service.create({
    name: options.name ?? 'test',
    scopes,
    expiresAt: options.expired ? new Date(Date.now() - 60_000) : null,
  });
  if (options.revoked) await service.revoke(row.id);
  return { id: row.id, key };
}

export const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });

/** Creates a transaction with the given credential, failing loudly if it is not created. */
export async function createAs(
  app: FastifyInstance,
  credential: string,
  body: Record<string, unknown>,
): Promise<{ id: string; user_id: string; transaction_amount: number }> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/transaction/',
    headers: bearer(credential),
    payload: body,
  });
  if (response.statusCode !== 201) {
    throw new Error(`create answered ${response.statusCode}: ${response.body}`);
  }
  return response.json().data;
}
