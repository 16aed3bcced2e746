import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { AppError } from './errors.js';
import { errorResponses, RETRY_AFTER_SECONDS } from './http-errors.js';
import type { RateLimiter } from './rate-limit.js';

/**
 * Access control: who is calling (authentication), how often (rate limits), and whether they may
 * (authorization). Every route declares its access in `config.access`; a route without one stops
 * the app from building, so no route is ever left open by omission.
 */

export const SCOPES = [
  'transactions:read',
  'transactions:write',
  'analytics:read',
  'webhooks:manage',
  'admin',
] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * What a user token may do, on its own user's data only. `admin` and `webhooks:manage` are for
 * service keys: routes that need them answer a user token 404, as if they did not exist.
 */
export const USER_SCOPES: ReadonlySet<Scope> = new Set([
  'transactions:read',
  'transactions:write',
  'analytics:read',
]);

/**
 * Where a route finds the user that owns what it touches, for user tokens:
 * `param:user_id` the path parameter and `body:user_id` the JSON body's field (both checked here,
 * the body after validation); `record` means the handler enforces it, passing `ownerOf(request)`
 * to the service: a stored record of another user answers the service's own not-found, and a
 * list (an event feed, say) is filtered to that user.
 */
export type OwnerSource = 'param:user_id' | 'body:user_id' | 'record';

export type RouteAccess = 'public' | { scope: Scope; owner?: OwnerSource };

export type Principal =
  | { kind: 'key'; keyId: string; scopes: Set<Scope> }
  | { kind: 'user'; userId: string }
  /** Open development mode (no credentials configured), and every request to a public route. */
  | { kind: 'anonymous' };

/** A route and its declared access, as the app registered it (for docs and tests). */
export interface AccessRoute {
  method: string;
  url: string;
  access: RouteAccess;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route. Required on every route. */
    access?: RouteAccess;
    /**
     * The 404 a user token gets for another user's data on this route (`param:` and `body:`
     * owners): the same answer a user that does not exist gets. Defaults to USER_NOT_FOUND.
     */
    notFound?: (request: FastifyRequest) => AppError;
  }
  interface FastifyRequest {
    /** Who is calling; set before any handler runs. */
    principal: Principal;
  }
  interface FastifyInstance {
    /** Every route with its declared access, in registration order. */
    accessRoutes: readonly AccessRoute[];
  }
}

/** The identity writes are scoped to (idempotency keys): key id, `user:<sub>` or `anonymous`. */
export function callerIdentity(principal: Principal): string {
  switch (principal.kind) {
    case 'key':
      return principal.keyId;
    case 'user':
      return `user:${principal.userId}`;
    default:
      return 'anonymous';
  }
}

/** The user whose data alone this request may touch, or undefined for service callers. */
export function ownerOf(request: FastifyRequest): string | undefined {
  const { principal } = request;
  return principal?.kind === 'user' ? principal.userId : undefined;
}

export function hasScope(principal: Principal, scope: Scope): boolean {
  switch (principal.kind) {
    case 'key':
      // admin implies every other scope: it can create a key with any scope anyway.
      return principal.scopes.has(scope) || principal.scopes.has('admin');
    case 'user':
      return USER_SCOPES.has(scope);
    default:
      return true;
  }
}

/** What presented credentials turned out to be. */
export type Authentication =
  | { ok: true; principal: Exclude<Principal, { kind: 'anonymous' }> }
  | {
      ok: false;
      reason: 'invalid' | 'unavailable';
      /** Why, for the log only (never the credential): e.g. `revoked key k…`, `expired token`. */
      detail?: string;
    };

export interface AccessControlOptions {
  /** Checks a bearer credential (an API key or a user token). */
  authenticate(credential: string): Promise<Authentication>;
  /** True while no way to authenticate exists (development only): everyone is anonymous. */
  isOpen(): Promise<boolean>;
  limiter: RateLimiter;
  rateLimitMax: number;
  rateLimitIpMax: number;
}

/**
 * Framework routes that cannot carry `config.access` themselves: Swagger UI's pages and assets,
 * and the CORS preflight. All are public.
 */
function frameworkAccess(route: RouteOptions): RouteAccess | undefined {
  if (route.url === '/docs' || route.url.startsWith('/docs/')) return 'public';
  if (route.method === 'OPTIONS' && route.url === '*') return 'public';
  return undefined;
}

const BEARER = /^Bearer[ ]+([\x21-\x7e]{1,4096})[ ]*$/i;
const REALM = 'Bearer realm="fido"';

/**
 * Installs the route check (`onRoute`), authentication, rate limiting and scope checks
 * (`onRequest`), and the body owner check (`preHandler`). Call before any route is registered.
 */
export function installAccessControl(app: FastifyInstance, options: AccessControlOptions): void {
  const routes: AccessRoute[] = [];
  app.decorate('accessRoutes', routes);
  // Every request gets its own principal in onRequest; until then, none (typed as present).
  app.decorateRequest('principal', null as unknown as { getter: () => Principal });

  app.addHook('onRoute', (route) => {
    const access = route.config?.access ?? frameworkAccess(route);
    if (access === undefined) {
      throw new Error(
        `Route ${String(route.method)} ${route.url} declares no config.access: every route must ` +
          "say who may call it ('public' or { scope })",
      );
    }
    route.config = { ...route.config, access };
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) routes.push({ method, url: route.url, access });
    if (access !== 'public') documentAccess(route, access);
  });

  app.addHook('onRequest', async (request, reply) => {
    // Until proven otherwise (and for good on public and unmatched routes, which answer the same
    // to everyone).
    request.principal = { kind: 'anonymous' };
    const access = request.routeOptions.config.access;
    if (access === undefined || access === 'public') return;

    const credential = readBearer(request);
    let principal: Principal | undefined;
    let failure: 'missing' | 'invalid' | undefined;
    if (credential === undefined) {
      if (await options.isOpen()) principal = { kind: 'anonymous' };
      else failure = 'missing';
    } else if (credential === null) {
      failure = 'invalid';
    } else {
      const result = await options.authenticate(credential);
      if (result.ok) {
        principal = result.principal;
      } else {
        request.log.info({ auth_failure: result.detail ?? result.reason }, 'credentials refused');
        if (result.reason === 'unavailable') {
          // The token's key source (a JWKS endpoint) did not answer: retry, never let in.
          void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
          throw new AppError(
            'SERVICE_UNAVAILABLE',
            'Service is unavailable, please try again later',
          );
        }
        failure = 'invalid';
      }
    }

    // Counted before credentials are refused: guessing keys costs the guesser's address.
    const identity =
      principal && principal.kind !== 'anonymous' ? callerIdentity(principal) : undefined;
    const decision = identity
      ? await options.limiter.check(identity, options.rateLimitMax)
      : await options.limiter.check(`ip:${request.ip}`, options.rateLimitIpMax);
    if (decision.limit > 0) {
      void reply.header('ratelimit-limit', String(decision.limit));
      void reply.header('ratelimit-remaining', String(decision.remaining));
      void reply.header('ratelimit-reset', String(decision.resetSeconds));
      void reply.header(
        'ratelimit-policy',
        `${decision.limit};w=${String(options.limiter.windowSeconds)}`,
      );
    }
    if (!decision.allowed) {
      void reply.header('retry-after', String(decision.resetSeconds));
      throw new AppError('RATE_LIMITED', 'Too many requests, retry after the time in Retry-After');
    }

    if (!principal) {
      void reply.header(
        'www-authenticate',
        failure === 'missing' ? REALM : `${REALM}, error="invalid_token"`,
      );
      throw new AppError(
        'UNAUTHENTICATED',
        failure === 'missing'
          ? 'Authentication required: send Authorization: Bearer <API key or user token>'
          : 'The credentials are not valid (unknown, revoked or expired)',
      );
    }
    request.principal = principal;
    authorize(request, reply, access, principal);
  });

  app.addHook('preHandler', async (request) => {
    const access = request.routeOptions.config.access;
    if (typeof access !== 'object' || access.owner !== 'body:user_id') return;
    const owner = ownerOf(request);
    if (owner === undefined) return;
    const claimed = (request.body as { user_id?: unknown } | undefined)?.user_id;
    if (claimed !== owner) throw hidden(request, String(claimed));
  });
}

/** Scope and ownership checks that need no body; throws the answer when access is refused. */
function authorize(
  request: FastifyRequest,
  reply: FastifyReply,
  access: Exclude<RouteAccess, 'public'>,
  principal: Principal,
): void {
  if (principal.kind === 'key') {
    if (hasScope(principal, access.scope)) return;
    void reply.header(
      'www-authenticate',
      `${REALM}, error="insufficient_scope", scope="${access.scope}"`,
    );
    throw new AppError('INSUFFICIENT_SCOPE', `This API key lacks the scope ${access.scope}`);
  }
  if (principal.kind !== 'user') return;
  // A user token sees routes for service keys as not there at all.
  if (access.owner === undefined || !hasScope(principal, access.scope)) {
    const path = request.url.split('?')[0] ?? '/';
    throw new AppError('ROUTE_NOT_FOUND', `Route ${request.method} ${path} not found`);
  }
  if (access.owner === 'param:user_id') {
    const userId = (request.params as { user_id?: string }).user_id;
    if (userId !== principal.userId) throw hidden(request, String(userId));
  }
}

/** Another user's data, answered as if it did not exist. */
function hidden(request: FastifyRequest, userId: string): AppError {
  return (
    request.routeOptions.config.notFound?.(request) ??
    new AppError('USER_NOT_FOUND', `User ID ${userId} not found`)
  );
}

/**
 * The credential from `Authorization: Bearer …`: undefined when there is no header, null when
 * the header is there but is not a bearer credential.
 */
function readBearer(request: FastifyRequest): string | null | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  return BEARER.exec(header)?.[1] ?? null;
}

/** Adds the security requirement, the scope and the auth error answers to the route's OpenAPI. */
function documentAccess(route: RouteOptions, access: Exclude<RouteAccess, 'public'>): void {
  const schema = (route.schema ?? {}) as Record<string, unknown>;
  const response = (schema.response ?? {}) as Record<string, unknown>;
  const ownerNote =
    access.owner === undefined
      ? 'User tokens: not available (404).'
      : USER_SCOPES.has(access.scope)
        ? "User tokens: only the token's own user's data; anything else answers 404."
        : '';
  const alternative = access.scope === 'admin' ? '' : ' (or `admin`)';
  const note = `**Requires scope \`${access.scope}\`**${alternative}. ${ownerNote}`.trim();
  route.schema = {
    ...(schema as RouteOptions['schema']),
    description: typeof schema.description === 'string' ? `${schema.description}\n\n${note}` : note,
    security: [{ bearerAuth: [access.scope] }],
    'x-required-scope': access.scope,
    response: { ...response, ...errorResponses(401, 403, 429) },
  } as RouteOptions['schema'];
}
