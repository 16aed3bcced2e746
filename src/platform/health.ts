import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { Cache } from './cache.js';
import type { DatabaseHandle } from '../db/client.js';
import {
  DEFAULT_UNAVAILABLE_MESSAGE,
  ErrorBody,
  errorBody,
  RETRY_AFTER_SECONDS,
} from './http-errors.js';

/**
 * A readiness probe must answer fast even when the database hangs: every check runs at once and
 * each gives up after this, so /readyz answers within about this long (under 2 s).
 */
const READINESS_TIMEOUT_MS = 1_500;

const Checks = Type.Record(Type.String(), Type.String());

const Auth = Type.Union([Type.Literal('required'), Type.Literal('open')], {
  description: '`open`: no credentials exist yet and every request is let in (development only).',
});
const OPEN_WARNING =
  'Authentication is off: no API key or JWT verifier exists. Create a key: ' +
  'npm run cli -- keys create --scopes admin --name me';

export const healthRoutes: FastifyPluginAsync<{
  database: DatabaseHandle;
  cache: Pick<Cache, 'check'>;
  /** Read replicas, each ok or why it is skipped (down, lagging, paused, not_standby). */
  replicas?: { check(): Promise<Record<string, string>> } | undefined;
  /** Whether requests need credentials right now (reported, never a reason to be unready). */
  auth: () => Promise<'open' | 'required'>;
  /**
   * Say so in the body too when open (development). Test suites run open on purpose and keep
   * the plain body; the header is always there.
   */
  announceOpen: boolean;
  /**
   * With NATS_URL: the relay's lag (events committed but not yet in the stream) and, in a process
   * that runs the relay, whether it is connected (undefined elsewhere). Reported, never fatal:
   * the API serves while NATS is away, and the relay catches up.
   */
  jetstream?: { lag: () => Promise<number>; connected: () => boolean | undefined };
}> = async (app, { database, cache, replicas, auth, announceOpen, jetstream }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Liveness: the process is up',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
      config: { access: 'public' },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        summary:
          'Readiness: the database answers (a degraded cache or read replica is reported, not fatal)',
        response: {
          200: Type.Object({
            status: Type.Literal('ready'),
            checks: Checks,
            jetstream_lag: Type.Optional(
              Type.Integer({
                minimum: 0,
                description:
                  'With NATS_URL: events committed but not yet in the JetStream stream ' +
                  '(counted up to 1,000,000)',
              }),
            ),
            auth: Type.Optional(Auth),
            warning: Type.Optional(Type.String()),
          }),
          // No checks when the server is shutting down: it answers before probing anything.
          503: Type.Object({ ...ErrorBody.properties, checks: Type.Optional(Checks) }),
        },
      },
      config: { access: 'public' },
    },
    async (request, reply) => {
      // All at once, each bounded: the open-mode check reads the database too.
      let lag: number | undefined;
      const noReplicas: Record<string, string> = {};
      const [databaseStatus, cacheStatus, replicaStates, mode] = await Promise.all([
        check(() => database.ping()),
        cache.check(),
        replicas ? withTimeout(replicas.check(), { replica_check: 'timeout' }) : noReplicas,
        withTimeout(auth(), 'required' as const),
        jetstream &&
          check(async () => {
            lag = await jetstream.lag();
          }),
      ]);
      // Without the cache every request is still answered, from the database: ready, degraded.
      // Likewise without a replica: its reads go to the primary.
      const checks: Record<string, string> = { database: databaseStatus, cache: cacheStatus };
      const replicaNames = Object.keys(replicaStates);
      if (replicaNames.length > 0) {
        checks.read_replicas = replicaNames.every((name) => replicaStates[name] === 'ok')
          ? 'ok'
          : 'degraded';
        Object.assign(checks, replicaStates);
      }
      const connected = jetstream?.connected();
      if (connected !== undefined) checks.jetstream = connected ? 'ok' : 'unavailable';
      void reply.header('fido-auth', mode);
      if (checks.database === 'ok') {
        return {
          status: 'ready' as const,
          checks,
          ...(lag === undefined ? {} : { jetstream_lag: lag }),
          ...(mode === 'open' && announceOpen ? { auth: mode, warning: OPEN_WARNING } : {}),
        };
      }
      void reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS));
      return {
        ...errorBody(request, 'SERVICE_UNAVAILABLE', DEFAULT_UNAVAILABLE_MESSAGE),
        checks,
      };
    },
  );
};

async function withTimeout<T>(work: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), READINESS_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function check(probe: () => Promise<void>): Promise<'ok' | 'unavailable'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'unavailable'>((resolve) => {
    timer = setTimeout(() => resolve('unavailable'), READINESS_TIMEOUT_MS);
  });
  try {
    return await Promise.race([probe().then(() => 'ok' as const), timeout]);
  } catch {
    return 'unavailable';
  } finally {
    clearTimeout(timer);
  }
}
