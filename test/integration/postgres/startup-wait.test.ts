import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import {
  captureLogs,
  createTestDatabase,
  testConfig,
  testKeyRing,
  type TestDatabase,
} from '../../helpers/app.js';
import { TcpProxy } from '../../helpers/tcp-proxy.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/*
 * Start-up waits up to 30 s for a database that is still coming up (a container started beside
 * the API), retrying once a second. Fastify's own plugin timeout (10 s by default) must not cut
 * that wait short with "plugin did not start in time".
 */
describe('start-up before the database answers', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;

  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url!);
    proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.start();
    await proxy.cut();
  });

  afterAll(async () => {
    await proxy?.close();
    await database?.drop();
  });

  it('keeps retrying past ten seconds and serves once the database answers', async () => {
    const url = new URL(database.url!);
    url.host = `127.0.0.1:${proxy.port}`;
    const { logger, lines } = captureLogs('warn');
    const retries = () => lines.filter((line) => line.includes('database not reachable yet'));
    const starting = buildApp(testConfig({ DATABASE_URL: url.toString() }), {
      logger,
      keyRing: testKeyRing(),
    });
    starting.catch(() => undefined);
    // Retries are a second apart: the twelfth comes more than ten seconds after the first try.
    await eventually(() => (retries().length >= 12 ? true : undefined), {
      what: 'twelve start-up retries',
      timeoutMs: 60_000,
    });
    await proxy.restore();
    const app = await starting;
    try {
      expect((await app.inject('/readyz')).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
