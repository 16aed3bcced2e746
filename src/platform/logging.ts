import { randomUUID } from 'node:crypto';
import { appendFileSync, writeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import pino, { type Logger, type LoggerOptions } from 'pino';

/**
 * Paths that may hold personal data or secrets. Bodies are never logged whole, but an error
 * object or a debug line could carry one, so the names are censored wherever they appear.
 */
const REDACTED_PATHS = [
  'full_name',
  '*.full_name',
  '*.*.full_name',
  'fullName',
  '*.fullName',
  // Credentials: API keys and user tokens are never logged, whatever carries them.
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.headers.authorization',
  'authorization',
  '*.authorization',
  'api_key',
  '*.api_key',
  'token',
  '*.token',
  // Webhook signing secrets (shown once in the create and rotate answers).
  'secret',
  '*.secret',
  '*.*.secret',
];

interface SerializedError {
  type: string;
  message: string;
  code?: string;
  stack?: string;
  cause?: SerializedError;
}

/**
 * Errors as logged: type, message, code, stack and cause chain, and never the parameters of a
 * failed query (drizzle puts them in its message), which hold whatever the client sent.
 */
export function serializeError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) return { type: typeof error, message: String(error) };
  const withQuery = error as Error & { query?: unknown; params?: unknown; code?: unknown };
  const message =
    typeof withQuery.query === 'string' && 'params' in withQuery
      ? `Failed query: ${withQuery.query}`
      : error.message;
  return {
    type: error.name,
    message,
    ...(typeof withQuery.code === 'string' ? { code: withQuery.code } : {}),
    ...(error.stack ? { stack: error.stack.replace(error.message, message) } : {}),
    ...(error.cause !== undefined && depth < 5
      ? { cause: serializeError(error.cause, depth + 1) }
      : {}),
  };
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    serializers: { err: serializeError },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { service: 'fido-transactions-api' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

export function createLogger(level: string): Logger {
  return pino(loggerOptions(level));
}

/** Log lines a blocked stdout may hold back before new ones are dropped (16 MiB). */
const LOG_BUFFER_BYTES_MAX = 16 * 1024 * 1024;
/**
 * How long closing waits for the buffered lines to be written (milliseconds). A stdout nobody reads
 * never drains: then the app closes anyway and pino's exit hook makes a last, synchronous try.
 */
const LOG_CLOSE_WAIT_MS = 5_000;

/** The HTTP server's log destination, owned by its app: opened by buildApp, closed with it. */
export interface LogDestination {
  stream: pino.DestinationStream;
  /** Lines dropped so far because LOG_BUFFER_BYTES_MAX were already waiting to be written. */
  droppedLines: () => number;
  /** Writes what is buffered and closes; lines logged after that are written synchronously. */
  close: () => Promise<void>;
}

/**
 * Where the HTTP server's log lines go: stdout (or a file: `dest`), written asynchronously. Pino's
 * default writes each line with its own synchronous write(2), which cost about 5% of a cached
 * read's CPU under load; here the lines logged while a write is in flight leave together in the
 * next one. Pino flushes it synchronously when the process exits, crash included; only a SIGKILL
 * loses the lines still buffered. A stdout that stops reading holds back at most
 * LOG_BUFFER_BYTES_MAX, then lines are dropped (and counted) rather than the server stalling.
 */
export function openLogDestination(dest: number | string = 1): LogDestination {
  const buffered = pino.destination({ dest, sync: false, maxLength: LOG_BUFFER_BYTES_MAX });
  // Set (untyped) once the last buffered line is written and it stops taking lines: writes after
  // that would throw, so they go out synchronously instead, still after every buffered line.
  const closed = () => (buffered as unknown as { destroyed: boolean }).destroyed;
  let dropped = 0;
  // SonicBoom emits 'drop' once per refused write, and pino writes a line per call.
  buffered.on('drop', () => {
    dropped += 1;
  });
  // After close (a last "shut down cleanly", say), one synchronous write per line, as pino's default.
  const writeNow = (line: string) => {
    try {
      if (typeof dest === 'number') writeSync(dest, line);
      else appendFileSync(dest, line);
    } catch {
      dropped += 1;
    }
  };
  return {
    stream: {
      write: (line: string) => {
        if (closed()) writeNow(line);
        else buffered.write(line);
      },
    },
    droppedLines: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        if (closed()) return resolve();
        const timer = setTimeout(resolve, LOG_CLOSE_WAIT_MS);
        buffered.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        buffered.end();
      }),
  };
}

/**
 * Query parameters whose values are logged as `[redacted]`: anything that could be a credential
 * (`access_token`, `api_key`, `apikey`, `token`, `key`, `secret`, `password`, `signature`, …).
 */
const SECRET_QUERY_NAME = /token|key|secret|passw|auth|sig|session|cookie|credential/i;
/** Longest URL written to a log line: a client's 8 KB query is not worth keeping whole. */
const LOGGED_URL_LENGTH_MAX = 512;

/** The request's path and its query with every value that might be a credential redacted. */
export function loggableUrl(url: string): string {
  const mark = url.indexOf('?');
  if (mark === -1) return url.slice(0, LOGGED_URL_LENGTH_MAX);
  const parts = url
    .slice(mark + 1)
    .split('&')
    .map((part) => {
      const equals = part.indexOf('=');
      const rawName = equals === -1 ? part : part.slice(0, equals);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      } catch {
        // Undecodable: judged as written.
      }
      return equals !== -1 && SECRET_QUERY_NAME.test(name) ? `${rawName}=[redacted]` : part;
    });
  return `${url.slice(0, mark)}?${parts.join('&')}`.slice(0, LOGGED_URL_LENGTH_MAX);
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Honour a caller's `X-Request-Id` when it is safe to log; otherwise make one. */
export function requestIdOf(request: IncomingMessage): string {
  const incoming = request.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming)
    ? incoming
    : randomUUID();
}
