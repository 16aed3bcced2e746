import cors from '@fastify/cors';
import type { FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { looksLikeApiKey, type ApiKeysService } from '../modules/api-keys/index.js';
import { installAccessControl, type Authentication, type Scope } from '../platform/auth.js';
import { createTokenVerifier, type TokenVerifier } from '../platform/jwt.js';
import { AppError, StartupError } from '../platform/errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** True while requests without credentials are let in (development, before any key exists). */
    isOpenMode(): Promise<boolean>;
  }
}

/** The service cannot start: nobody could ever authenticate. */
export class AuthSetupError extends StartupError {
  override readonly name = 'AuthSetupError';
}

/** While open, how often a process looks for a key created elsewhere (another replica, the CLI). */
const OPEN_MODE_RECHECK_MS = 5_000;
/** Browsers may reuse a CORS preflight answer this long. */
const CORS_PREFLIGHT_MAX_AGE_SECONDS = 600;

/** Who could authenticate, as start-up sees it: the settings, and the keys in the database. */
export interface AuthenticationSetup {
  /** NODE_ENV=production or AUTH_MODE=required: every request needs credentials. */
  required: boolean;
  /** JWT_SECRET, JWT_JWKS_URL or JWT_JWKS is set: user tokens can be verified. */
  tokens: boolean;
  /** An API key exists that is neither revoked nor expired. */
  usableKey: boolean;
}

export async function authenticationSetup(
  config: Config,
  apiKeys: ApiKeysService,
): Promise<AuthenticationSetup> {
  return {
    required: config.nodeEnv === 'production' || config.authMode === 'required',
    tokens: Boolean(config.jwtSecret || config.jwtJwksUrl || config.jwtJwks),
    usableKey: await apiKeys.hasUsable(),
  };
}

/**
 * The one rule the API's start-up and `cli preflight` share: credentials are required and nobody
 * could present any, so the API refuses to start.
 */
export function nobodyCanAuthenticate(setup: AuthenticationSetup): boolean {
  return setup.required && !setup.tokens && !setup.usableKey;
}

/**
 * Whether requests without credentials are let in: only outside production, with AUTH_MODE=auto,
 * no JWT verifier and no usable API key. Once a key exists the process closes for good (revoking
 * every key later does not reopen it; a restart decides afresh).
 */
async function openModeGate(
  config: Config,
  apiKeys: ApiKeysService,
  log: FastifyBaseLogger,
): Promise<() => Promise<boolean>> {
  const setup = await authenticationSetup(config, apiKeys);
  if (nobodyCanAuthenticate(setup)) {
    throw new AuthSetupError(
      `${config.nodeEnv === 'production' ? 'NODE_ENV=production' : 'AUTH_MODE=required'} needs a ` +
        'way to authenticate, and none is configured: set JWT_SECRET, JWT_JWKS_URL or JWT_JWKS ' +
        'for user tokens, or create the first API key with ' +
        '`npm run cli -- keys create --scopes admin --name ops` ' +
        '(in the production image: `node dist/cli.js keys create --scopes admin --name ops`)',
    );
  }
  if (setup.required || setup.tokens || setup.usableKey) return async () => false;

  let open = true;
  let checkedAt = Date.now();
  const close = (why: string) => {
    if (!open) return;
    open = false;
    log.warn({ auth: 'required' }, `authentication is now required: ${why}`);
  };
  apiKeys.onCreated(() => close('an API key was created'));
  log.warn(
    { auth: 'open' },
    'AUTHENTICATION IS OFF: no API key and no JWT verifier exist, so every request is let in ' +
      'as anonymous (development only; production refuses to start like this). Create a key ' +
      'to turn it on: npm run cli -- keys create --scopes admin --name me',
  );
  return async () => {
    if (open && Date.now() - checkedAt >= OPEN_MODE_RECHECK_MS) {
      checkedAt = Date.now();
      try {
        if (await apiKeys.hasUsable()) close('an API key exists');
      } catch {
        // The database is down: the request that asked will fail on its own.
      }
    }
    return open;
  };
}

/** An API key (`fido_…`) is checked against the database, anything else as a user's JWT. */
function authenticator(apiKeys: ApiKeysService, verifier: TokenVerifier | undefined) {
  return async (credential: string): Promise<Authentication> => {
    if (looksLikeApiKey(credential)) {
      const found = await apiKeys.check(credential);
      if (!found.ok) return { ok: false, reason: 'invalid', detail: `${found.reason} API key` };
      return {
        ok: true,
        principal: {
          kind: 'key',
          keyId: found.row.id,
          scopes: new Set(found.row.scopes as Scope[]),
        },
      };
    }
    if (!verifier) return { ok: false, reason: 'invalid', detail: 'token, and no JWT verifier' };
    const token = await verifier.verify(credential);
    return token.ok
      ? { ok: true, principal: { kind: 'user', userId: token.userId } }
      : { ok: false, reason: token.reason, detail: `user token: ${token.detail}` };
  };
}

export interface AccessControlPluginOptions {
  config: Config;
  apiKeys: ApiKeysService;
  /** The worker role serves only health and metrics, and checks no credentials. */
  serving: boolean;
}

/**
 * Who may call what: the open-mode gate, API-key or JWT authentication, rate limits, scope checks
 * and CORS. Register before any route: a route registered after it without `config.access` stops
 * the build. Refuses to start (AuthSetupError) when nobody could ever authenticate.
 */
export const accessControlPlugin = fp<AccessControlPluginOptions>(
  async (app, { config, apiKeys, serving }) => {
    if (!serving) {
      app.decorate('isOpenMode', async () => false);
      return;
    }
    const verifier = createTokenVerifier({
      secret: config.jwtSecret,
      jwksUrl: config.jwtJwksUrl,
      jwks: config.jwtJwks,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      clockToleranceSeconds: config.jwtClockToleranceSeconds,
    });
    const isOpen = await openModeGate(config, apiKeys, app.log);
    app.decorate('isOpenMode', isOpen);
    // CORS before access control: its refusals (401, 403, 429) must carry the CORS headers too,
    // or an allowed browser application could read neither the error nor its Retry-After.
    if (config.corsOrigins.length > 0) {
      // A preflight must name its origin and method; @fastify/cors would refuse one that does not
      // in text/plain. Refused here, in the error shape.
      app.addHook('onRequest', async (request) => {
        if (request.method !== 'OPTIONS') return;
        if (request.headers.origin && request.headers['access-control-request-method']) return;
        throw new AppError(
          'BAD_REQUEST',
          'A CORS preflight needs the Origin and Access-Control-Request-Method headers',
        );
      });
      await app.register(cors, {
        origin: [...config.corsOrigins],
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
        allowedHeaders: [
          'authorization',
          'content-type',
          'idempotency-key',
          'if-match',
          'if-none-match',
          'x-request-id',
        ],
        exposedHeaders: [
          'etag',
          'location',
          'retry-after',
          'idempotent-replayed',
          'x-request-id',
          'ratelimit-limit',
          'ratelimit-remaining',
          'ratelimit-reset',
          'ratelimit-policy',
          'www-authenticate',
        ],
        maxAge: CORS_PREFLIGHT_MAX_AGE_SECONDS,
      });
    }
    installAccessControl(app, {
      authenticate: authenticator(apiKeys, verifier),
      isOpen,
      limiter: app.rateLimiter,
      rateLimitMax: config.rateLimitMax,
      rateLimitIpMax: config.rateLimitIpMax,
    });
  },
  { name: 'access-control', fastify: '5.x', dependencies: ['redis'] },
);
