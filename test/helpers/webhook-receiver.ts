import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, exactly the bytes that were signed. */
  body: string;
  /** The status this receiver answered. */
  answered: number;
}

/**
 * A webhook receiver on 127.0.0.1 (port 0): records every request and answers with whatever
 * `respond` returns for it (200 by default). Paths tell endpoints apart.
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Requests held open without an answer ('hang'), by path. */
  readonly hung: ReceivedRequest[] = [];
  /** Requests whose answer `respond` held back with a promise (recorded when they arrive). */
  readonly held: Omit<ReceivedRequest, 'answered'>[] = [];
  /** A promise holds the answer until it settles (a test acts while the sender waits). */
  respond: (path: string, index: number) => number | 'hang' | Promise<number> = () => 200;
  #server: Server;
  #hanging = new Set<() => void>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<WebhookReceiver> {
    const server = createServer();
    const receiver = new WebhookReceiver(server);
    server.on('request', (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const path = request.url ?? '/';
        const index = [...receiver.requests, ...receiver.hung].filter(
          (r) => r.path === path,
        ).length;
        const received = {
          path,
          headers: request.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        const answer = receiver.respond(path, index);
        const reply = (outcome: number | 'hang') => {
          if (outcome === 'hang') {
            receiver.hung.push({ ...received, answered: 0 });
            receiver.#hanging.add(() => response.destroy());
            return;
          }
          receiver.requests.push({ ...received, answered: outcome });
          response.writeHead(outcome, { 'content-type': 'text/plain' }).end('ok');
        };
        if (answer instanceof Promise) {
          receiver.held.push(received);
          void answer.then(reply);
        } else {
          reply(answer);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  url(path: string): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}${path}`;
  }

  /** Requests to `path` that this receiver answered with a 2xx. */
  accepted(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path && r.answered < 300);
  }

  async close(): Promise<void> {
    for (const release of this.#hanging) release();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
