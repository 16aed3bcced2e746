import { Cron } from 'croner';
import { isCurrencyCode } from './domain/money.js';
import { PAGE_SIZE_MAX } from './domain/pagination.js';
import { KeyConfigError, parseKeyRing } from './platform/crypto.js';
import { StartupError } from './platform/errors.js';

/**
 * The service's configuration: every environment variable is read here, once, and nowhere else.
 * A bad value stops start-up with a message that names the variable.
 */
export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  /** PostgreSQL connection string; undefined means embedded PGlite under `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /**
   * PostgreSQL read replicas (streaming standbys of DATABASE_URL) for history, analytics and reads
   * by id; a replica serves a read only once it has replayed the user's latest write.
   */
  readonly readDatabaseUrls: readonly string[];
  /** A replica whose replay lags the primary by more than this is skipped. */
  readonly readReplicaMaxLagMs: number;
  /** Redis connection string (one server); undefined means the in-process cache. */
  readonly redisUrl: string | undefined;
  /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES); used instead of REDIS_URL when set. */
  readonly redisClusterNodes: readonly string[] | undefined;
  /** Seconds a cached history page or analytics answer lives (the old service's name). */
  readonly cacheExpirationSeconds: number;
  readonly cachePrefix: string;
  /** Entries the in-process cache holds at most. */
  readonly cacheMaxEntries: number;
  /** A cache operation slower than this is abandoned and the database answers. */
  readonly cacheTimeoutMs: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly defaultCurrency: string;
  /** IANA zone whose calendar days analytics count in (busiest day, daily rollups). */
  readonly analyticsTimeZone: string;
  readonly scheduler: 'on' | 'off';
  /** Cron pattern (with optional seconds field) for the rollup reconciliation. */
  readonly reconcileSchedule: string;
  /** Users recomputed per reconciliation run, in each of its two passes. */
  readonly reconcileBatchSize: number;
  /** Cron pattern for deleting expired idempotency keys. */
  readonly idempotencyExpirySchedule: string;
  readonly secretKey: string | undefined;
  readonly encryptionKeys: string | undefined;
  /**
   * The old FastAPI service's SECRET_KEY (a Fernet key), for `import-legacy` only. Checked by that
   * command (a bad one is its fatal error, exit 2), not here: nothing else uses it.
   */
  readonly legacySecretKey: string | undefined;
  readonly dbPoolSize: number;
  readonly dbStatementTimeoutMs: number;
  readonly dbConnectTimeoutMs: number;
  /** A request waiting on a PostgreSQL that answers nothing gets its 503 within this (ms). */
  readonly dbHangTimeoutMs: number;
  readonly bodyLimitBytes: number;
  readonly requestTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly idempotencyKeyTtlHours: number;
  readonly trustProxy: boolean;
  /** HTTP processes `npm start` runs (Node cluster, one shared port). */
  readonly webConcurrency: number;
  /** Under WEB_CONCURRENCY > 1: restarts of a process failing right after starting, then give up. */
  readonly webStartRetries: number;
  /**
   * How far V8 lets the heap grow past its live size before the next full collection, in percent
   * (`--heap-growing-percent`, see `platform/heap.ts`); 0 leaves it to V8.
   */
  readonly heapGrowingPercent: number;
  /** `inline`: this process also delivers events; `off`: another process (`npm run worker`) does. */
  readonly worker: 'inline' | 'off';
  /** How often the worker looks for new events and due retries when nothing wakes it sooner. */
  readonly workerPollMs: number;
  /**
   * `on`: after each change the worker recomputes the user's first history page and all-time
   * analytics into the cache. Off by default: it doubled the work a create leaves behind, for
   * reads that may never come (docs/performance.md).
   */
  readonly cacheWarmup: 'on' | 'off';
  /** Port of the standalone worker's /healthz, /readyz and /metrics. */
  readonly workerPort: number;
  /** Deliveries (webhook calls and handler runs) one worker process runs at once. */
  readonly workerConcurrency: number;
  /** A delivery that still fails this long after it was queued is marked dead. */
  readonly webhookRetryHours: number;
  /** First retry delay; each later one doubles, up to the maximum, with jitter. */
  readonly webhookBackoffBaseMs: number;
  readonly webhookBackoffMaxMs: number;
  /** One delivery attempt (connect, send, response headers) must finish within this. */
  readonly webhookTimeoutMs: number;
  /** Whether webhook URLs may point at loopback, private or link-local addresses. */
  readonly webhookAllowPrivateTargets: boolean;
  readonly webhookMaxEndpoints: number;
  /** Completed deliveries, and events every consumer has had, are deleted after this many days. */
  readonly eventRetentionDays: number;
  readonly pruneSchedule: string;
  /** Cron pattern for re-encrypting values still on a retired key (resumes an interrupted rotation). */
  readonly keyRotationSchedule: string;
  /**
   * `required`: every non-public route needs credentials. `auto`: required in production, and
   * elsewhere as soon as a JWT verifier or an API key exists; open (anonymous) until then.
   */
  readonly authMode: 'auto' | 'required';
  /** HS256 secret for end-user tokens (at least 32 bytes). */
  readonly jwtSecret: string | undefined;
  /** Where the JWKS that verifies RS256/ES256 end-user tokens is fetched from. */
  readonly jwtJwksUrl: string | undefined;
  /** The JWKS itself, inline (JSON), for deployments that pin their keys. */
  readonly jwtJwks: string | undefined;
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  /** Seconds of clock skew tolerated on `exp` and `nbf`. */
  readonly jwtClockToleranceSeconds: number;
  /** Requests per window for one API key or user token; 0 turns rate limiting off. */
  readonly rateLimitMax: number;
  /** Requests per window from one IP address without valid credentials; 0 turns it off. */
  readonly rateLimitIpMax: number;
  readonly rateLimitWindowSeconds: number;
  /** Origins allowed to call from a browser; empty means CORS stays off. */
  readonly corsOrigins: readonly string[];
  /** Largest request head (request line and headers) Node accepts; larger answers 431. */
  readonly maxHeaderBytes: number;
  /** Open connections per process; 0 means unbounded. */
  readonly maxConnections: number;
  /** Milliseconds a kept-alive idle connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /** Largest history page a client may ask for (the v1 contract's 500 is the ceiling). */
  readonly pageSizeMax: number;
  /** `public`, or `admin` to require an admin key for Prometheus metrics. */
  readonly metricsAccess: 'public' | 'admin';
  /** NATS server(s) whose JetStream receives every event; undefined leaves the relay off. */
  readonly natsUrl: string | undefined;
  /** The JetStream stream the relay publishes to (created if missing). */
  readonly natsStream: string;
  /** Events go to `<prefix>.<event type>`; the stream holds `<prefix>.>`. */
  readonly natsSubjectPrefix: string;
}

export class ConfigError extends StartupError {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }

  /** Every problem on one line, for an operator's terminal. */
  override toString(): string {
    return `invalid configuration: ${this.problems.join('; ')}`;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const NODE_ENVS = ['development', 'production', 'test'] as const;
/**
 * The heap's growing factor by default: the next full collection when the heap is twice its live
 * size (Go's default target too), where V8 alone lets it reach 4×. RSS under load 182-217 MB
 * against 201-316 MB, with no CPU cost measurable (docs/performance.md, Memory).
 */
const HEAP_GROWING_PERCENT_DEFAULT = 100;
/** HS256 keys shorter than the hash output are weaker than the algorithm (RFC 7518 3.2). */
const JWT_SECRET_BYTES_MIN = 32;
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off', '']);

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function isOrigin(origin: string): boolean {
  try {
    const url = new URL(origin);
    return /^https?:$/.test(url.protocol) && url.origin === origin;
  } catch {
    return false;
  }
}

function isJwks(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as { keys?: unknown };
    return Array.isArray(parsed.keys) && parsed.keys.length > 0;
  } catch {
    return false;
  }
}

function isCronPattern(pattern: string): boolean {
  try {
    new Cron(pattern, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}

/** Reads `.env` from the working directory into the environment when there is one. */
export function readDotEnv(file = '.env'): void {
  try {
    process.loadEnvFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** Parses `env` into a frozen Config, collecting every problem before failing. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };

  function integer(name: string, fallback: number, min: number, max: number): number {
    const raw = read(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return Number(raw);
  }

  function decimal(name: string, fallback: number, min: number, max: number): number {
    const raw = read(name);
    if (raw === undefined) return fallback;
    if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be a number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return Number(raw);
  }

  function boolean(name: string, fallback: boolean): boolean {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (TRUE_WORDS.has(raw)) return true;
    if (FALSE_WORDS.has(raw)) return false;
    problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  }

  function oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    problems.push(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
    return fallback;
  }

  const nodeEnv = oneOf('NODE_ENV', NODE_ENVS, 'development');
  // DEBUG is the old service's switch; it only lowers the default log level.
  const debug = boolean('DEBUG', false);
  const logLevel = oneOf('LOG_LEVEL', LOG_LEVELS, debug ? 'debug' : 'info');

  const databaseUrl = read('DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// connection string');
  }

  const readDatabaseUrls = (read('READ_DATABASE_URL') ?? '')
    .split(',')
    .map((url) => url.trim())
    .filter(Boolean);
  for (const url of readDatabaseUrls) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      problems.push(
        'READ_DATABASE_URL must list postgres:// or postgresql:// connection strings, comma-separated',
      );
      break;
    }
  }
  if (readDatabaseUrls.length > 0 && databaseUrl === undefined) {
    problems.push('READ_DATABASE_URL needs DATABASE_URL (the primary the replicas stream from)');
  }

  const redisUrl = read('REDIS_URL');
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    problems.push('REDIS_URL must be a redis:// or rediss:// connection string');
  }
  const clusterNodesRaw = read('REDIS_CLUSTER_NODES');
  const redisClusterNodes = clusterNodesRaw
    ?.split(',')
    .map((seed) => seed.trim())
    .filter((seed) => seed !== '');
  if (redisClusterNodes !== undefined) {
    if (redisClusterNodes.length === 0) {
      problems.push('REDIS_CLUSTER_NODES must list at least one redis:// or rediss:// node');
    }
    for (const seed of redisClusterNodes) {
      if (!/^rediss?:\/\/[^/?#]+:\d+\/?$/.test(seed)) {
        problems.push(
          `REDIS_CLUSTER_NODES must be comma-separated redis://host:port or rediss://host:port (got "${seed.replace(/\/\/[^@]*@/, '//…@')}")`,
        );
      }
    }
    if (new Set(redisClusterNodes.map((seed) => seed.split(':')[0])).size > 1) {
      problems.push('REDIS_CLUSTER_NODES must all be redis:// or all rediss://');
    }
    if (redisUrl !== undefined) {
      problems.push('set REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both');
    }
  }
  const cachePrefix = read('CACHE_PREFIX') ?? 'fido';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(cachePrefix)) {
    problems.push('CACHE_PREFIX must be 1-64 of A-Z a-z 0-9 _ . -');
  }

  const defaultCurrency = read('DEFAULT_CURRENCY') ?? 'GHS';
  if (!isCurrencyCode(defaultCurrency)) {
    problems.push(`DEFAULT_CURRENCY must be an ISO 4217 currency code (got "${defaultCurrency}")`);
  }

  const analyticsTimeZone = read('ANALYTICS_TIMEZONE') ?? 'UTC';
  if (!isTimeZone(analyticsTimeZone)) {
    problems.push(
      `ANALYTICS_TIMEZONE must be an IANA time zone such as UTC or Africa/Accra (got "${analyticsTimeZone}")`,
    );
  }
  function cron(name: string, fallback: string): string {
    const pattern = read(name) ?? fallback;
    if (!isCronPattern(pattern)) {
      problems.push(`${name} must be a cron pattern such as "*/5 * * * *" (got "${pattern}")`);
    }
    return pattern;
  }

  const jwtSecret = read('JWT_SECRET');
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < JWT_SECRET_BYTES_MIN) {
    // Never echo the secret, even a bad one.
    problems.push(`JWT_SECRET must be at least ${JWT_SECRET_BYTES_MIN} bytes (HS256 key)`);
  }
  const jwtJwksUrl = read('JWT_JWKS_URL');
  if (jwtJwksUrl !== undefined && !/^https?:\/\/\S+$/.test(jwtJwksUrl)) {
    problems.push('JWT_JWKS_URL must be an http:// or https:// URL');
  }
  const jwtJwks = read('JWT_JWKS');
  if (jwtJwks !== undefined && !isJwks(jwtJwks)) {
    problems.push('JWT_JWKS must be a JSON Web Key Set: {"keys":[…]}');
  }
  if (jwtJwks !== undefined && jwtJwksUrl !== undefined) {
    problems.push('JWT_JWKS and JWT_JWKS_URL are alternatives: set one');
  }
  const natsUrl = read('NATS_URL');
  if (
    natsUrl !== undefined &&
    !natsUrl.split(',').every((server) => /^(nats|tls):\/\/[^\s/,]+$/.test(server.trim()))
  ) {
    problems.push(
      'NATS_URL must be a nats:// or tls:// server address (host:port), or several comma-separated',
    );
  }
  // Stream names may not hold spaces, dots, wildcards or path separators.
  const natsStream = read('NATS_STREAM') ?? 'FIDO_EVENTS';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(natsStream)) {
    problems.push(`NATS_STREAM must be 1-64 of A-Z a-z 0-9 _ - (got "${natsStream}")`);
  }
  const natsSubjectPrefix = read('NATS_SUBJECT_PREFIX') ?? 'fido.events';
  if (
    !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(natsSubjectPrefix) ||
    natsSubjectPrefix.length > 128
  ) {
    problems.push(
      `NATS_SUBJECT_PREFIX must be dot-separated tokens of A-Z a-z 0-9 _ -, no wildcards, at most 128 characters (got "${natsSubjectPrefix}")`,
    );
  }
  const corsOrigins = (read('CORS_ORIGINS') ?? '')
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of corsOrigins) {
    if (!isOrigin(origin)) {
      problems.push(
        `CORS_ORIGINS must list origins such as https://app.example.com, comma-separated (got "${origin}")`,
      );
    }
  }

  const config: Config = {
    nodeEnv,
    port: integer('PORT', 8000, 0, 65_535),
    host: read('HOST') ?? '0.0.0.0',
    databaseUrl,
    dataDir: read('DATA_DIR') ?? './data',
    readDatabaseUrls,
    readReplicaMaxLagMs: integer('READ_REPLICA_MAX_LAG_MS', 10_000, 0, 3_600_000),
    redisUrl,
    redisClusterNodes,
    cacheExpirationSeconds: integer('CACHE_EXPIRATION', 300, 1, 86_400),
    cachePrefix,
    cacheMaxEntries: integer('CACHE_MAX_ENTRIES', 10_000, 1, 1_000_000),
    // Generous: a saturated event loop delays the timer itself, and a timeout sends every read to
    // the database exactly when CPU is short. A Redis that is down fails at once regardless.
    cacheTimeoutMs: integer('CACHE_TIMEOUT_MS', 500, 5, 10_000),
    logLevel,
    defaultCurrency,
    analyticsTimeZone,
    scheduler: oneOf('SCHEDULER', ['on', 'off'] as const, 'on'),
    reconcileSchedule: cron('RECONCILE_SCHEDULE', '*/5 * * * *'),
    idempotencyExpirySchedule: cron('IDEMPOTENCY_EXPIRY_SCHEDULE', '*/15 * * * *'),
    reconcileBatchSize: integer('RECONCILE_BATCH_SIZE', 500, 1, 100_000),
    secretKey: read('SECRET_KEY'),
    encryptionKeys: read('ENCRYPTION_KEYS'),
    legacySecretKey: read('LEGACY_SECRET_KEY'),
    dbPoolSize: integer('DB_POOL_SIZE', 10, 1, 200),
    dbStatementTimeoutMs: integer('DB_STATEMENT_TIMEOUT_MS', 5_000, 100, 600_000),
    dbConnectTimeoutMs: integer('DB_CONNECT_TIMEOUT_MS', 2_000, 100, 60_000),
    dbHangTimeoutMs: integer('DB_HANG_TIMEOUT_MS', 3_000, 300, 60_000),
    bodyLimitBytes: integer('BODY_LIMIT_BYTES', 64 * 1024, 1024, 10 * 1024 * 1024),
    requestTimeoutMs: integer('REQUEST_TIMEOUT_MS', 15_000, 1_000, 600_000),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    idempotencyKeyTtlHours: integer('IDEMPOTENCY_KEY_TTL_HOURS', 24, 1, 24 * 30),
    trustProxy: boolean('TRUST_PROXY', false),
    webConcurrency: integer('WEB_CONCURRENCY', 1, 1, 64),
    webStartRetries: integer('WEB_START_RETRIES', 5, 0, 20),
    heapGrowingPercent: integer('HEAP_GROWING_PERCENT', HEAP_GROWING_PERCENT_DEFAULT, 0, 1_000),
    worker: oneOf('WORKER', ['inline', 'off'] as const, 'inline'),
    workerPollMs: integer('WORKER_POLL_MS', 1_000, 10, 60_000),
    cacheWarmup: oneOf('CACHE_WARMUP', ['on', 'off'] as const, 'off'),
    workerPort: integer('WORKER_PORT', 8001, 0, 65_535),
    workerConcurrency: integer('WORKER_CONCURRENCY', 8, 1, 256),
    webhookRetryHours: decimal('WEBHOOK_RETRY_HOURS', 72, 0.0001, 24 * 30),
    webhookBackoffBaseMs: integer('WEBHOOK_BACKOFF_BASE_MS', 10_000, 1, 3_600_000),
    webhookBackoffMaxMs: integer('WEBHOOK_BACKOFF_MAX_MS', 6 * 3_600_000, 1, 24 * 3_600_000),
    webhookTimeoutMs: integer('WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    // Off in production: a webhook URL must not reach the service's own network (SSRF).
    webhookAllowPrivateTargets: boolean('WEBHOOK_ALLOW_PRIVATE_TARGETS', nodeEnv !== 'production'),
    webhookMaxEndpoints: integer('WEBHOOK_MAX_ENDPOINTS', 100, 1, 10_000),
    eventRetentionDays: integer('EVENT_RETENTION_DAYS', 90, 1, 3_650),
    pruneSchedule: cron('PRUNE_SCHEDULE', '17 * * * *'),
    keyRotationSchedule: cron('KEY_ROTATION_SCHEDULE', '41 3 * * *'),
    authMode: oneOf('AUTH_MODE', ['auto', 'required'] as const, 'auto'),
    jwtSecret,
    jwtJwksUrl,
    jwtJwks,
    jwtIssuer: read('JWT_ISSUER'),
    jwtAudience: read('JWT_AUDIENCE'),
    jwtClockToleranceSeconds: integer('JWT_CLOCK_TOLERANCE_SECONDS', 30, 0, 300),
    rateLimitMax: integer('RATE_LIMIT_MAX', 1_200, 0, 1_000_000),
    rateLimitIpMax: integer('RATE_LIMIT_IP_MAX', 300, 0, 1_000_000),
    rateLimitWindowSeconds: integer('RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86_400),
    corsOrigins,
    maxHeaderBytes: integer('MAX_HEADER_BYTES', 16 * 1024, 1_024, 1024 * 1024),
    maxConnections: integer('MAX_CONNECTIONS', 1_000, 0, 1_000_000),
    keepAliveTimeoutMs: integer('KEEP_ALIVE_TIMEOUT_MS', 72_000, 1_000, 600_000),
    pageSizeMax: integer('PAGE_SIZE_MAX', PAGE_SIZE_MAX, 1, PAGE_SIZE_MAX),
    metricsAccess: oneOf('METRICS_ACCESS', ['public', 'admin'] as const, 'public'),
    natsUrl,
    natsStream,
    natsSubjectPrefix,
  };

  try {
    parseKeyRing({ secretKey: config.secretKey, encryptionKeys: config.encryptionKeys });
  } catch (error) {
    if (!(error instanceof KeyConfigError)) throw error;
    problems.push(error.message);
  }
  if (nodeEnv === 'production' && !config.secretKey && !config.encryptionKeys) {
    // A generated key would live on one machine's disk; in production that loses data.
    problems.push('SECRET_KEY or ENCRYPTION_KEYS is required when NODE_ENV=production');
  }

  if (config.webConcurrency > 1) {
    // Embedded PGlite belongs to one process, and an in-process cache per process could serve a
    // read from before another process's write.
    if (!config.databaseUrl) problems.push('WEB_CONCURRENCY above 1 needs DATABASE_URL');
    if (!config.redisUrl && !config.redisClusterNodes) {
      problems.push('WEB_CONCURRENCY above 1 needs REDIS_URL or REDIS_CLUSTER_NODES');
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
