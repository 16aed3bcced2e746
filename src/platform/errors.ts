/**
 * The one error catalogue: every stable machine code the API can answer with and its HTTP status.
 * Services throw AppError with a code; the error handler (platform/http-errors.ts) maps it to the
 * envelope. Nothing else decides a status for an error.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 422,
  MALFORMED_JSON: 422,
  TRANSACTION_NOT_FOUND: 404,
  TRANSACTION_HISTORY_NOT_FOUND: 404,
  ANALYTICS_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  WEBHOOK_NOT_FOUND: 404,
  DELIVERY_NOT_FOUND: 404,
  WEBHOOK_LIMIT_REACHED: 409,
  EVENT_EXPIRED: 410,
  API_KEY_NOT_FOUND: 404,
  /** A user token naming another user (as if that user did not exist). */
  USER_NOT_FOUND: 404,
  /** No credentials, or credentials that are malformed, unknown, revoked or expired. */
  UNAUTHENTICATED: 401,
  /** A valid API key without the scope the route requires. */
  INSUFFICIENT_SCOPE: 403,
  RATE_LIMITED: 429,
  METHOD_NOT_ALLOWED: 405,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  /** The request line and headers exceed MAX_HEADER_BYTES (refused by the HTTP server). */
  REQUEST_HEADER_TOO_LARGE: 431,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  IDEMPOTENCY_KEY_IN_FLIGHT: 409,
  BAD_REQUEST: 400,
  REQUEST_TIMEOUT: 408,
  SERVICE_UNAVAILABLE: 503,
  /**
   * A write whose commit was sent but never confirmed (the connection was lost, or the client
   * stopped waiting): it may or may not have been applied. Never "nothing happened".
   */
  WRITE_OUTCOME_UNKNOWN: 504,
  INTERNAL_ERROR: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** One entry of a 422 `detail`, shaped like FastAPI's so old clients can read it. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: ValidationIssue[],
  ) {
    super(message);
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
  }
}

/** A query parameter holding a cursor this service did not issue (or one out of range). */
export function invalidCursor(parameter: string): ValidationIssue {
  return { loc: ['query', parameter], msg: 'Invalid cursor', type: 'value_error' };
}

export function validationError(issues: ValidationIssue[]): AppError {
  const first = issues[0];
  const message =
    issues.length === 1 && first
      ? `Validation failed: ${first.loc.join('.')}: ${first.msg}`
      : `Validation failed: ${issues.length} problems`;
  return new AppError('VALIDATION_FAILED', message, issues);
}

// SQLSTATE classes and codes that mean "the database is not there right now" rather than "the
// query is wrong": connection exceptions (08), operator intervention (57P0x), too many
// connections, a statement cancelled by our own timeout, and a server starting up.
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014', '53400']);
const UNAVAILABLE_SYSCALL_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'Connection is closed',
  'connect ECONNREFUSED',
];

/** True when `error`, or anything in its cause chain, says the database is unreachable. */
export function isDatabaseUnavailable(error: unknown): boolean {
  // An error with an HTTP status is the request's (a client hanging up mid-body is ECONNRESET
  // too): never the database's, whatever socket code it carries.
  if (typeof (error as { statusCode?: unknown } | null)?.statusCode === 'number') return false;
  for (let current = error, depth = 0; current && depth < 8; depth += 1) {
    if (typeof current !== 'object') return false;
    const { code, message, cause } = current as {
      code?: unknown;
      message?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string') {
      if (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code)) return true;
      if (UNAVAILABLE_SYSCALL_CODES.has(code)) return true;
    }
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((m) => message.includes(m))) {
      return true;
    }
    current = cause;
  }
  return false;
}

/**
 * The database connection failed after a commit was sent (a COMMIT, or a statement that commits
 * by itself), so whether it was applied is unknown: with synchronous replication, for instance, a
 * commit waiting for the standby that is cut off has already committed on the primary.
 */
export class CommitOutcomeUnknown extends Error {
  override readonly name = 'CommitOutcomeUnknown';
  constructor(cause: unknown) {
    super('the database did not confirm the commit', { cause });
  }
}

/**
 * Whether a failure of a statement that commits (sent to the server) leaves its outcome unknown:
 * the connection failed. A statement cancelled by statement_timeout (57014) was rolled back.
 */
export function leavesOutcomeUnknown(error: unknown): boolean {
  return isDatabaseUnavailable(error) && (error as { code?: unknown }).code !== '57014';
}

/**
 * A process cannot start (or a CLI command cannot run) because of how it was set up: a bad
 * setting, a data directory in use, no way to authenticate. The operator needs one line saying
 * what to do, not a stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}
