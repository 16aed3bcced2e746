import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/app.js';
import {
  EXIT_TIMEOUT_MS,
  START_TIMEOUT_MS,
  ServerProcess,
  within,
} from '../helpers/server-process.js';
import { transactionBody } from '../helpers/factories.js';

/*
 * The service as an operator runs it: a real `node` process started from src/server.ts, driven
 * over TCP and stopped with signals. With TEST_DATABASE_URL set the servers use a fresh
 * PostgreSQL database; otherwise the embedded PGlite under DATA_DIR.
 */

// Start-up and exit bounds (START_TIMEOUT_MS, EXIT_TIMEOUT_MS) live in ../helpers/server-process.ts.
const TEST_TIMEOUT_MS = 420_000;

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), 'fido-cwd-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

const servers = new Set<ServerProcess>();
const tmpDirs: string[] = [];
const databases: TestDatabase[] = [];

afterEach(async () => {
  for (const server of servers) {
    if (server.running) server.child.kill('SIGKILL');
    await within(server.exited, EXIT_TIMEOUT_MS, () => 'a killed server to exit');
  }
  servers.clear();
  for (const database of databases.splice(0)) await database.drop();
  for (const dir of tmpDirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function freshDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fido-process-'));
  tmpDirs.push(dir);
  return dir;
}

/** DATABASE_URL of a fresh database when the suite runs on PostgreSQL; none for PGlite. */
async function databaseEnv(): Promise<Record<string, string>> {
  const database = await createTestDatabase();
  databases.push(database);
  return database.url ? { DATABASE_URL: database.url } : {};
}

function startServer(env: Record<string, string>): ServerProcess {
  const server = new ServerProcess(
    {
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      NODE_ENV: 'development',
      ...env,
    },
    workDir,
  );
  servers.add(server);
  return server;
}

async function startedServer(
  env: Record<string, string>,
): Promise<{ server: ServerProcess; url: string }> {
  const server = startServer(env);
  const port = await server.listeningPort();
  return { server, url: `http://127.0.0.1:${port}` };
}

function secretKey(): string {
  return randomBytes(32).toString('base64');
}

async function postTransaction(url: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/api/v1/transaction/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Resolves with the error code of a TCP connect to `port` (ECONNREFUSED), or 'connected'. */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** A raw HTTP/1.1 exchange whose body the test sends in pieces, whenever it likes. */
class SlowRequest {
  private readonly socket: net.Socket;
  private received = '';
  private readonly closed: Promise<unknown>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      this.received += chunk;
    });
    this.closed = once(socket, 'close');
  }

  static async open(port: number): Promise<SlowRequest> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await within(once(socket, 'connect'), EXIT_TIMEOUT_MS, () => 'a connection to the server');
    return new SlowRequest(socket);
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Waits until the server has sent `text` (bounded). */
  async sawResponse(text: string): Promise<void> {
    const deadline = Date.now() + EXIT_TIMEOUT_MS;
    while (!this.received.includes(text)) {
      if (Date.now() > deadline) throw new Error(`no "${text}" from the server: ${this.received}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** The final response (status and JSON body) once the server closed the connection. */
  async response(): Promise<{ status: number; body: Record<string, unknown> }> {
    await within(this.closed, EXIT_TIMEOUT_MS, () => `the response; got so far: ${this.received}`);
    // Skip the interim "100 Continue"; the last status line is the final response.
    const start = this.received.lastIndexOf('HTTP/1.1 ');
    const final = this.received.slice(start);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(final)?.[1]);
    const body = final.slice(final.indexOf('\r\n\r\n') + 4);
    return { status, body: JSON.parse(body) as Record<string, unknown> };
  }
}

describe('graceful shutdown', () => {
  it(
    'finishes a request in flight on SIGTERM, exits 0, then refuses connections',
    async () => {
      const { server } = await startedServer({
        DATA_DIR: await freshDataDir(),
        SECRET_KEY: secretKey(),
        ...(await databaseEnv()),
      });
      const port = await server.listeningPort();

      const payload = JSON.stringify(transactionBody({ full_name: 'Yaw Asante' }));
      const half = Math.floor(payload.length / 2);
      const request = await SlowRequest.open(port);
      // "Expect: 100-continue" makes the server say when it has the headers: from then on the
      // request is in flight, not an idle connection.
      request.write(
        'POST /api/v1/transaction/ HTTP/1.1\r\n' +
          `Host: 127.0.0.1:${port}\r\n` +
          'Content-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(payload)}\r\n` +
          'Expect: 100-continue\r\n' +
          'Connection: close\r\n\r\n',
      );
      await request.sawResponse('100 Continue');
      request.write(payload.slice(0, half));

      server.child.kill('SIGTERM');
      await server.logLine(/^shutting down$/, EXIT_TIMEOUT_MS);
      request.write(payload.slice(half));

      const { status, body } = await request.response();
      expect(status, server.output()).toBe(201);
      expect(body).toMatchObject({ code: 201, data: { full_name: 'Yaw Asante' } });

      const exit = await server.exitWithin();
      expect(exit, server.output()).toEqual({ code: 0, signal: null });
      expect(await connectOutcome(port)).toBe('ECONNREFUSED');
    },
    TEST_TIMEOUT_MS,
  );
});

describe('configuration that cannot work stops start-up', () => {
  it(
    'refuses production without an encryption key, naming SECRET_KEY',
    async () => {
      const server = startServer({ NODE_ENV: 'production', DATA_DIR: await freshDataDir() });
      const exit = await server.exitWithin(START_TIMEOUT_MS);
      expect(exit.code, server.output()).toBe(1);
      expect(server.stderr).toContain('SECRET_KEY');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refuses a PORT that is not a number, naming PORT',
    async () => {
      const server = startServer({
        PORT: 'abc',
        DATA_DIR: await freshDataDir(),
        SECRET_KEY: secretKey(),
      });
      const exit = await server.exitWithin(START_TIMEOUT_MS);
      expect(exit.code, server.output()).toBe(1);
      expect(server.stderr).toMatch(/\bPORT\b/);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refuses a malformed SECRET_KEY, naming it without echoing its value',
    async () => {
      // Base64 of 12 bytes: well-formed text, but not a 32-byte key.
      const badKey = randomBytes(12).toString('base64');
      const server = startServer({ DATA_DIR: await freshDataDir(), SECRET_KEY: badKey });
      const exit = await server.exitWithin(START_TIMEOUT_MS);
      expect(exit.code, server.output()).toBe(1);
      expect(server.stderr).toContain('SECRET_KEY');
      expect(server.stderr).not.toContain(badKey);
      expect(server.stdout).not.toContain(badKey);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('embedded database (no DATABASE_URL)', () => {
  it(
    'lets only one process use a DATA_DIR: the second exits, the first keeps serving',
    async () => {
      const dataDir = await freshDataDir();
      const env = { DATA_DIR: dataDir, SECRET_KEY: secretKey() };
      const { url } = await startedServer(env);

      const second = startServer(env);
      const exit = await second.exitWithin(START_TIMEOUT_MS);
      expect(exit.code, second.output()).not.toBe(0);
      expect(second.stderr).toMatch(/DATA_DIR .* is in use/);

      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const created = await postTransaction(url, transactionBody());
      expect(created.status).toBe(201);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('development key', () => {
  it(
    'is created in DATA_DIR on first start and reused after a restart',
    async () => {
      const dataDir = await freshDataDir();
      const env = { DATA_DIR: dataDir, ...(await databaseEnv()) };
      const keyFile = path.join(dataDir, 'encryption.key');

      const first = await startedServer(env);
      const key = await readFile(keyFile, 'utf8');
      expect(key.trim()).not.toBe('');
      const created = await postTransaction(
        first.url,
        transactionBody({ full_name: 'Efua Darko' }),
      );
      expect(created.status).toBe(201);
      const { id } = ((await created.json()) as { data: { id: string } }).data;
      first.server.child.kill('SIGTERM');
      expect(await first.server.exitWithin(), first.server.output()).toEqual({
        code: 0,
        signal: null,
      });

      const second = await startedServer(env);
      const read = await fetch(`${second.url}/api/v1/transaction/${id}`);
      expect(read.status).toBe(200);
      expect(await read.json()).toMatchObject({ data: { id, full_name: 'Efua Darko' } });
      expect(await readFile(keyFile, 'utf8')).toBe(key);
    },
    TEST_TIMEOUT_MS,
  );
});
