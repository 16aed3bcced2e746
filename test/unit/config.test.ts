import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const KEY = Buffer.alloc(32, 7).toString('base64');

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('has working defaults for a development start', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      nodeEnv: 'development',
      port: 8000,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: './data',
      defaultCurrency: 'GHS',
      logLevel: 'info',
      idempotencyKeyTtlHours: 24,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('runs the worker inline and allows private webhook targets only outside production', () => {
    expect(loadConfig({})).toMatchObject({
      worker: 'inline',
      webhookRetryHours: 72,
      webhookAllowPrivateTargets: true,
      eventRetentionDays: 90,
    });
    expect(loadConfig({ NODE_ENV: 'production', SECRET_KEY: KEY }).webhookAllowPrivateTargets).toBe(
      false,
    );
    expect(loadConfig({ WEBHOOK_RETRY_HOURS: '0.5' }).webhookRetryHours).toBe(0.5);
    const problems = problemsOf({
      WORKER: 'sometimes',
      WEBHOOK_RETRY_HOURS: '-1',
      WEBHOOK_TIMEOUT_MS: '5',
      PRUNE_SCHEDULE: 'hourly',
    });
    for (const name of ['WORKER', 'WEBHOOK_RETRY_HOURS', 'WEBHOOK_TIMEOUT_MS', 'PRUNE_SCHEDULE']) {
      expect(
        problems.some((p) => p.startsWith(name)),
        name,
      ).toBe(true);
    }
  });

  it('runs several HTTP processes only on PostgreSQL and Redis', () => {
    expect(loadConfig({}).webConcurrency).toBe(1);
    const problems = problemsOf({ WEB_CONCURRENCY: '2' });
    expect(problems).toEqual([
      'WEB_CONCURRENCY above 1 needs DATABASE_URL',
      'WEB_CONCURRENCY above 1 needs REDIS_URL or REDIS_CLUSTER_NODES',
    ]);
    expect(
      loadConfig({
        WEB_CONCURRENCY: '2',
        DATABASE_URL: 'postgres://x@localhost/db',
        REDIS_URL: 'redis://localhost:6379',
      }).webConcurrency,
    ).toBe(2);
    expect(
      loadConfig({
        WEB_CONCURRENCY: '2',
        DATABASE_URL: 'postgres://x@localhost/db',
        REDIS_CLUSTER_NODES: 'redis://10.0.0.1:7000',
      }).webConcurrency,
    ).toBe(2);
  });

  it('reads REDIS_CLUSTER_NODES as a list of redis:// or rediss:// seeds, exclusive of REDIS_URL', () => {
    expect(
      loadConfig({ REDIS_CLUSTER_NODES: ' redis://10.0.0.1:7000, redis://10.0.0.2:7001/ ,' })
        .redisClusterNodes,
    ).toEqual(['redis://10.0.0.1:7000', 'redis://10.0.0.2:7001/']);
    expect(loadConfig({}).redisClusterNodes).toBeUndefined();
    for (const bad of [
      ',',
      'http://10.0.0.1:7000',
      'redis://10.0.0.1',
      'redis://a:1,rediss://b:2',
    ]) {
      expect(
        problemsOf({ REDIS_CLUSTER_NODES: bad }).some((p) => p.startsWith('REDIS_CLUSTER_NODES')),
        bad,
      ).toBe(true);
    }
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'redis://a:1', REDIS_URL: 'redis://b:2' })).toContain(
      'set REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both',
    );
  });

  it('reads read replicas as a list beside the primary, and refuses them without one', () => {
    const primary = 'postgres://fido@db:5432/fido';
    expect(loadConfig({ DATABASE_URL: primary })).toMatchObject({
      readDatabaseUrls: [],
      readReplicaMaxLagMs: 10_000,
    });
    const config = loadConfig({
      DATABASE_URL: primary,
      READ_DATABASE_URL: ' postgres://fido@r1:5432/fido , postgresql://fido@r2/fido ',
      READ_REPLICA_MAX_LAG_MS: '250',
    });
    expect(config.readDatabaseUrls).toEqual([
      'postgres://fido@r1:5432/fido',
      'postgresql://fido@r2/fido',
    ]);
    expect(config.readReplicaMaxLagMs).toBe(250);
    expect(problemsOf({ READ_DATABASE_URL: 'postgres://fido@r1/fido' })).toEqual([
      'READ_DATABASE_URL needs DATABASE_URL (the primary the replicas stream from)',
    ]);
    expect(
      problemsOf({
        DATABASE_URL: primary,
        READ_DATABASE_URL: 'postgres://fido@r1/fido,mysql://r2',
        READ_REPLICA_MAX_LAG_MS: '-1',
      }),
    ).toEqual([
      'READ_DATABASE_URL must list postgres:// or postgresql:// connection strings, comma-separated',
      'READ_REPLICA_MAX_LAG_MS must be a whole number from 0 to 3600000 (got "-1")',
    ]);
  });

  it('reads the old service names and their meaning', () => {
    expect(loadConfig({ DEBUG: 'true' }).logLevel).toBe('debug');
    expect(loadConfig({ DEBUG: 'true', LOG_LEVEL: 'warn' }).logLevel).toBe('warn');
    expect(loadConfig({ SECRET_KEY: KEY }).secretKey).toBe(KEY);
  });

  it('names every bad variable at once', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      DB_POOL_SIZE: '0',
      DEFAULT_CURRENCY: 'XYZ',
      DATABASE_URL: 'mysql://x',
      LOG_LEVEL: 'loud',
      DEBUG: 'maybe',
    });
    for (const name of [
      'PORT',
      'DB_POOL_SIZE',
      'DEFAULT_CURRENCY',
      'DATABASE_URL',
      'LOG_LEVEL',
      'DEBUG',
    ]) {
      expect(
        problems.some((p) => p.startsWith(name)),
        name,
      ).toBe(true);
    }
  });

  it('refuses production without an encryption key, and bad keys anywhere', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([
      'SECRET_KEY or ENCRYPTION_KEYS is required when NODE_ENV=production',
    ]);
    expect(loadConfig({ NODE_ENV: 'production', SECRET_KEY: KEY }).nodeEnv).toBe('production');
    const [problem] = problemsOf({ SECRET_KEY: 'too-short-to-be-a-key' });
    expect(problem).toMatch(/SECRET_KEY/);
    expect(problem).not.toContain('too-short-to-be-a-key');
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '  ' })).toMatchObject({
      port: 8000,
      databaseUrl: undefined,
    });
  });

  it('reads the access-control settings, with safe defaults', () => {
    expect(loadConfig({})).toMatchObject({
      authMode: 'auto',
      jwtSecret: undefined,
      rateLimitMax: 1200,
      rateLimitIpMax: 300,
      rateLimitWindowSeconds: 60,
      corsOrigins: [],
      maxHeaderBytes: 16384,
      maxConnections: 1000,
      pageSizeMax: 500,
      metricsAccess: 'public',
    });
    const config = loadConfig({
      AUTH_MODE: 'required',
      JWT_SECRET: 's'.repeat(32),
      JWT_ISSUER: 'https://issuer.example',
      JWT_AUDIENCE: 'fido',
      RATE_LIMIT_MAX: '0',
      CORS_ORIGINS: 'https://a.example, http://localhost:3000',
      PAGE_SIZE_MAX: '100',
      METRICS_ACCESS: 'admin',
    });
    expect(config).toMatchObject({
      authMode: 'required',
      jwtIssuer: 'https://issuer.example',
      rateLimitMax: 0,
      corsOrigins: ['https://a.example', 'http://localhost:3000'],
      pageSizeMax: 100,
      metricsAccess: 'admin',
    });
  });

  it('names each bad access-control variable, and never echoes a secret', () => {
    const shortSecret = 'too-short-secret';
    const problems = problemsOf({
      AUTH_MODE: 'off',
      JWT_SECRET: shortSecret,
      JWT_JWKS_URL: 'ftp://keys',
      JWT_JWKS: '{"keys":[]}',
      RATE_LIMIT_WINDOW_SECONDS: '0',
      CORS_ORIGINS: 'https://ok.example,*',
      MAX_HEADER_BYTES: '10',
      PAGE_SIZE_MAX: '501',
      METRICS_ACCESS: 'everyone',
    });
    for (const name of [
      'AUTH_MODE',
      'JWT_SECRET',
      'JWT_JWKS_URL',
      'JWT_JWKS',
      'RATE_LIMIT_WINDOW_SECONDS',
      'CORS_ORIGINS',
      'MAX_HEADER_BYTES',
      'PAGE_SIZE_MAX',
      'METRICS_ACCESS',
    ]) {
      expect(
        problems.some((p) => p.startsWith(name)),
        name,
      ).toBe(true);
    }
    for (const problem of problems) expect(problem).not.toContain(shortSecret);
    expect(problemsOf({ JWT_JWKS_URL: 'https://a/jwks', JWT_JWKS: '{"keys":[{}]}' })).toEqual([
      'JWT_JWKS and JWT_JWKS_URL are alternatives: set one',
    ]);
  });
  it('reads the JetStream relay settings, off without NATS_URL', () => {
    expect(loadConfig({})).toMatchObject({
      natsUrl: undefined,
      natsStream: 'FIDO_EVENTS',
      natsSubjectPrefix: 'fido.events',
    });
    expect(
      loadConfig({
        NATS_URL: 'nats://127.0.0.1:4222,tls://nats.internal:4222',
        NATS_STREAM: 'ORDERS_1',
        NATS_SUBJECT_PREFIX: 'acme.fido-events',
      }),
    ).toMatchObject({
      natsUrl: 'nats://127.0.0.1:4222,tls://nats.internal:4222',
      natsStream: 'ORDERS_1',
      natsSubjectPrefix: 'acme.fido-events',
    });
    const problems = problemsOf({
      NATS_URL: 'http://127.0.0.1:4222',
      NATS_STREAM: 'fido.events',
      NATS_SUBJECT_PREFIX: 'fido.*',
    });
    for (const name of ['NATS_URL', 'NATS_STREAM', 'NATS_SUBJECT_PREFIX']) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true);
    }
    expect(problemsOf({ NATS_SUBJECT_PREFIX: 'fido..events' })).toHaveLength(1);
  });
});
