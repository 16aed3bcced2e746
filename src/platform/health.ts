import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { Cache } from './cache.js';
import type { DatabaseHandle } from './db.js';
import {
  DEFAULT_UNAVAILABLE_MESSAGE,
  ErrorBody,
  errorBody,
  RETRY_AFTER_SECONDS,
} from './http-errors.js';

/** A readiness probe must answer fast even when the database hangs. */
const READINESS_TIMEOUT_MS = 2_000;

const Checks = Type.Record(Type.String(), Type.String());

export const healthRoutes: FastifyPluginAsync<{
  database: DatabaseHandle;
  cache: Pick<Cache, 'check'>;
}> = async (app, { database, cache }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Liveness: the process is up',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Readiness: the database answers (a degraded cache is reported, not fatal)',
        response: {
          200: Type.Object({ status: Type.Literal('ready'), checks: Checks }),
          503: Type.Object({ ...ErrorBody.properties, checks: Checks }),
        },
      },
    },
    async (request, reply) => {
      const [databaseStatus, cacheStatus] = await Promise.all([
        check(() => database.ping()),
        cache.check(),
      ]);
      // Without the cache every request is still answered, from the database: ready, degraded.
      const checks = { database: databaseStatus, cache: cacheStatus };
      if (checks.database === 'ok') return { status: 'ready' as const, checks };
      void reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS));
      return {
        ...errorBody(request, 'SERVICE_UNAVAILABLE', DEFAULT_UNAVAILABLE_MESSAGE),
        checks,
      };
    },
  );
};

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
