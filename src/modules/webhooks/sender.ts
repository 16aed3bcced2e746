import { lookup as dnsLookup, promises as dnsPromises, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { AttemptOutcome } from '../events/index.js';
import { REGISTRATION_LOOKUP_TIMEOUT_MS, RESPONSE_READ_LIMIT_BYTES } from './webhooks.limits.js';

export interface SendOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  /** Connecting, sending and reading the (bounded) response must all finish within this. */
  timeoutMs: number;
  /** When false, only public unicast addresses are reachable (resolved names included). */
  allowPrivateTargets: boolean;
}

/** One delivery attempt's outcome, as the event worker records it. */
export type SendResult = AttemptOutcome;

const USER_AGENT = 'Fido-Webhooks/1';

export class BlockedTargetError extends Error {
  constructor(address: string) {
    super(`Address ${address} is not a public address; webhooks may not reach it`);
    this.name = 'BlockedTargetError';
  }
}

/** True for addresses on the public internet (not loopback, private, link-local, multicast…). */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    // IPv4-compatible addresses (::a.b.c.d, deprecated) would otherwise pass as unicast.
    else if (v6.parts.slice(0, 6).every((part) => part === 0)) return false;
  }
  return parsed.range() === 'unicast';
}

/** A DNS lookup that refuses names resolving to non-public addresses (checked at connect time). */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
    if (error) {
      callback(error, '', 0);
      return;
    }
    const blocked = addresses.find((entry) => !isPublicAddress(entry.address));
    if (blocked) {
      callback(new BlockedTargetError(blocked.address), '', 0);
      return;
    }
    if (options.all) {
      (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      return;
    }
    const first = addresses[0];
    if (!first) callback(new Error(`No address for ${hostname}`), '', 0);
    else callback(null, first.address, first.family);
  });
};

/**
 * Special-use domain names (RFC 6761, RFC 6762, RFC 8375, and the cloud metadata names under
 * `.internal`): they never name a public host, so a webhook may not point at one whatever they
 * resolve to. `localhost.` and `foo.localhost` included: the trailing dot is dropped first.
 */
const SPECIAL_USE_SUFFIXES = [
  'localhost',
  'internal',
  'local',
  'localdomain',
  'home.arpa',
  'invalid',
  'test',
  'onion',
  'in-addr.arpa',
  'ip6.arpa',
];

/** True for a host name that is, or is under, a special-use name (case and final dot ignored). */
export function isSpecialUseName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.+$/, '');
  return SPECIAL_USE_SUFFIXES.some((suffix) => name === suffix || name.endsWith(`.${suffix}`));
}

/** The system resolver (/etc/hosts, then DNS), every address of the name. */
const systemLookup = (name: string) => dnsPromises.lookup(name, { all: true, verbatim: true });

export type HostCheck =
  | { ok: true }
  | { ok: false; reason: 'special-use' | 'not-public' | 'unresolvable'; address?: string };

/**
 * Whether a webhook may be registered for `hostname` when only public targets are allowed: not
 * a special-use name, not a non-public IP literal, and every address it resolves to public. A
 * lookup that fails for a reason other than "no such name" (a DNS outage, a timeout) lets the
 * registration through: the sender checks every address again when it connects.
 */
export async function checkPublicHost(hostname: string): Promise<HostCheck> {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    return isPublicAddress(host)
      ? { ok: true }
      : { ok: false, reason: 'not-public', address: host };
  }
  if (isSpecialUseName(host)) return { ok: false, reason: 'special-use' };
  return checkResolvedHost(host);
}

/** The resolution part of checkPublicHost: every address `name` resolves to must be public. */
export async function checkResolvedHost(name: string): Promise<HostCheck> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const addresses = await Promise.race([
      systemLookup(name),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), REGISTRATION_LOOKUP_TIMEOUT_MS);
      }),
    ]);
    if (addresses === undefined) return { ok: true };
    const blocked = addresses.find((entry) => !isPublicAddress(entry.address));
    return blocked ? { ok: false, reason: 'not-public', address: blocked.address } : { ok: true };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return code === 'ENOTFOUND' || code === 'ENODATA'
      ? { ok: false, reason: 'unresolvable' }
      : { ok: true };
  } finally {
    clearTimeout(timer);
  }
}

/** The URL's host when it is an IP literal outside the public internet (known before any lookup). */
export function privateLiteralHost(url: URL): string | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return isIP(host) && !isPublicAddress(host) ? host : undefined;
}

/** How long an idle connection to a receiver is kept: below the common 5 s server keep-alive. */
const IDLE_CONNECTION_MS = 4_000;
/** Idle connections kept per receiver (host and port). */
const IDLE_CONNECTIONS_PER_TARGET_MAX = 16;

const keepAlive = {
  keepAlive: true,
  timeout: IDLE_CONNECTION_MS,
  maxFreeSockets: IDLE_CONNECTIONS_PER_TARGET_MAX,
};

/**
 * Connections kept open between deliveries: opening one per delivery cost the worker more CPU than
 * the rest of the attempt. Separate pools by whether private targets are allowed, so that a
 * connection opened without the public-address check is never reused where the check applies.
 * Node closes an idle connection sooner than a receiver's `Keep-Alive: timeout` hint says.
 */
const pools = {
  checked: { http: new http.Agent(keepAlive), https: new https.Agent(keepAlive) },
  unchecked: { http: new http.Agent(keepAlive), https: new https.Agent(keepAlive) },
};

/**
 * POSTs one delivery. Never throws: every outcome, a refused connection included, is a result to
 * log. Redirects are not followed (a 3xx is a failure), and at most RESPONSE_READ_LIMIT_BYTES of
 * the response are read.
 */
export async function sendWebhook(options: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const isSuccess = (status: number | null) => status !== null && status >= 200 && status < 300;
  const result = (status: number | null, error: string | null): SendResult => ({
    ok: isSuccess(status),
    status,
    latencyMs: Math.round(performance.now() - started),
    error,
  });

  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return result(null, 'Invalid URL');
  }
  const blocked = privateLiteralHost(url);
  if (!options.allowPrivateTargets && blocked !== undefined) {
    return result(null, new BlockedTargetError(blocked).message);
  }

  const secure = url.protocol === 'https:';
  const pool = options.allowPrivateTargets ? pools.unchecked : pools.checked;
  const deadline = performance.now() + options.timeoutMs;
  const post = (agent: http.Agent | https.Agent | false) =>
    new Promise<{ status: number | null; error: string | null; stale: boolean }>((resolve) => {
      let settled = false;
      const finish = (status: number | null, error: string | null, stale = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status, error, stale });
      };
      const request = (secure ? https : http).request(
        url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(options.body)),
            'user-agent': USER_AGENT,
            ...options.headers,
          },
          agent,
          ...(options.allowPrivateTargets ? {} : { lookup: publicOnlyLookup }),
        },
        (response) => {
          const status = response.statusCode ?? null;
          const answered = () => finish(status, isSuccess(status) ? null : `HTTP ${status}`);
          let read = 0;
          response.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read > RESPONSE_READ_LIMIT_BYTES) {
              // The status is what counts; the rest of a large body is not worth the wait.
              response.destroy();
              answered();
            }
          });
          response.on('end', answered);
          response.on('error', answered);
        },
      );
      const timer = setTimeout(
        () => {
          request.destroy();
          finish(null, `Timed out after ${options.timeoutMs} ms`);
        },
        Math.max(0, deadline - performance.now()),
      );
      request.on('error', (error: NodeJS.ErrnoException) => {
        // A kept connection the receiver closed as we reused it: nothing was answered on it.
        const stale = request.reusedSocket && error.code === 'ECONNRESET';
        finish(null, error.code ? `${error.code}: ${error.message}` : error.message, stale);
      });
      request.end(options.body);
    });

  let sent = await post(secure ? pool.https : pool.http);
  // Once, on a connection of its own: the receiver may have processed it (deliveries are at
  // least once, and receivers dedupe on Fido-Event-Id).
  if (sent.stale && performance.now() < deadline) sent = await post(false);
  return result(sent.status, sent.error);
}
