import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { USER_ID_LENGTH_MAX } from '../domain/ids.js';
import { isPrintableText, textLength } from '../domain/text.js';

/**
 * End-user tokens: JWTs whose `sub` is a `user_id`. HS256 under a shared secret, or RS256/ES256
 * under keys from a JWKS. Each algorithm family is bound to its own key source, so a token can
 * never pick its verifier (no `alg: none`, no RS256 public key used as an HS256 secret).
 */
export interface JwtOptions {
  secret?: string | undefined;
  jwksUrl?: string | undefined;
  /** A JSON Web Key Set, as JSON text. */
  jwks?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  clockToleranceSeconds: number;
}

const ASYMMETRIC_ALGORITHMS = ['RS256', 'ES256'];
/** A JWKS endpoint that does not answer in this time fails the request (503), not hangs it. */
const JWKS_TIMEOUT_MS = 2_000;
/** At most one JWKS refetch per this interval when a token names an unknown key id. */
const JWKS_COOLDOWN_MS = 30_000;
/** Subjects become user ids: the same rules as a `user_id` (1–128, no control characters). */
function isUserIdText(subject: string): boolean {
  const length = textLength(subject);
  return length >= 1 && length <= USER_ID_LENGTH_MAX && isPrintableText(subject);
}

export type TokenCheck =
  | { ok: true; userId: string }
  /** `detail`: jose's error code or what was wrong, for logs; never the token. */
  | { ok: false; reason: 'invalid' | 'unavailable'; detail: string };

export interface TokenVerifier {
  verify(token: string): Promise<TokenCheck>;
}

/** The configured verifier, or undefined when no JWT setting is present. */
export function createTokenVerifier(options: JwtOptions): TokenVerifier | undefined {
  const secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
  let keySet: JWTVerifyGetKey | undefined;
  if (options.jwksUrl) {
    keySet = createRemoteJWKSet(new URL(options.jwksUrl), {
      timeoutDuration: JWKS_TIMEOUT_MS,
      cooldownDuration: JWKS_COOLDOWN_MS,
    });
  } else if (options.jwks) {
    keySet = createLocalJWKSet(JSON.parse(options.jwks) as JSONWebKeySet);
  }
  if (!secret && !keySet) return undefined;

  const claims = {
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
    clockTolerance: options.clockToleranceSeconds,
    // A token without an expiry would be a password that never changes.
    requiredClaims: ['sub', 'exp'],
  };

  return {
    async verify(token) {
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        return { ok: false, reason: 'invalid', detail: 'not a JWT' };
      }
      try {
        // `sub` as the token carries it: jose checks its presence, not its type.
        let subject: unknown;
        if (alg === 'HS256' && secret) {
          ({
            payload: { sub: subject },
          } = await jwtVerify(token, secret, {
            ...claims,
            algorithms: ['HS256'],
          }));
        } else if (alg !== undefined && ASYMMETRIC_ALGORITHMS.includes(alg) && keySet) {
          ({
            payload: { sub: subject },
          } = await jwtVerify(token, keySet, {
            ...claims,
            algorithms: ASYMMETRIC_ALGORITHMS,
          }));
        } else {
          return { ok: false, reason: 'invalid', detail: 'algorithm not accepted' };
        }
        // Only a non-empty string names a user: an array would be read as its text ("bob") by
        // the pattern test and by the ownership checks, and a number or object as anything.
        if (typeof subject !== 'string' || !isUserIdText(subject)) {
          return { ok: false, reason: 'invalid', detail: 'subject is not a user id' };
        }
        return { ok: true, userId: subject };
      } catch (error) {
        // The key source could not be reached: not the caller's fault, and not a reason to let
        // anyone in. Everything else (signature, expiry, claims, unknown key) is an invalid token.
        if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) {
          return { ok: false, reason: 'unavailable', detail: 'JWKS unreachable' };
        }
        return { ok: false, reason: 'invalid', detail: error.code };
      }
    },
  };
}
