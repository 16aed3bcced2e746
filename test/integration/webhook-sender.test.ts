import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPublicAddress, sendWebhook } from '../../src/modules/webhooks/sender.js';
import { useTestApp } from '../helpers/app.js';

describe('isPublicAddress', () => {
  it.each([
    ['8.8.8.8', true],
    ['2001:4860:4860::8888', true],
    ['127.0.0.1', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['::1', false],
    ['::', false],
    ['::ffff:127.0.0.1', false],
    ['::7f00:1', false],
    ['fd00::1', false],
    ['fe80::1', false],
    ['not-an-ip', false],
  ])('%s → %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

describe('sendWebhook', () => {
  let server: Server;
  let base: string;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      seen.push(request.url ?? '');
      if (request.url === '/redirect') {
        response.writeHead(302, { location: '/ok' }).end();
      } else if (request.url === '/silent') {
        // Never answers.
      } else if (request.url === '/huge') {
        response.writeHead(200);
        response.end(Buffer.alloc(4 * 1024 * 1024, 120));
      } else {
        response.writeHead(200).end('ok');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** A receiver answering 204, or cutting the connection, by the request's number on it. */
  async function receiver(behaviour: (nthOnConnection: number) => 'answer' | 'cut') {
    let connections = 0;
    let requests = 0;
    const perSocket = new WeakMap<object, number>();
    const target = createServer((request, response) => {
      requests += 1;
      const nth = (perSocket.get(request.socket) ?? 0) + 1;
      perSocket.set(request.socket, nth);
      request.resume();
      request.on('end', () => {
        if (behaviour(nth) === 'cut') request.socket.destroy();
        else response.writeHead(204).end();
      });
    });
    target.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/hook`,
      connections: () => connections,
      requests: () => requests,
      close: async () => {
        target.closeAllConnections();
        await new Promise((resolve) => target.close(resolve));
      },
    };
  }

  const send = (
    url: string,
    overrides: { timeoutMs?: number; allowPrivateTargets?: boolean } = {},
  ) =>
    sendWebhook({
      url,
      body: '{}',
      headers: {},
      timeoutMs: overrides.timeoutMs ?? 2_000,
      allowPrivateTargets: overrides.allowPrivateTargets ?? true,
    });

  it('succeeds on 2xx and fails on a redirect without following it', async () => {
    expect(await send(`${base}/ok`)).toMatchObject({ ok: true, status: 200, error: null });
    const redirected = await send(`${base}/redirect`);
    expect(redirected).toMatchObject({ ok: false, status: 302, error: 'HTTP 302' });
    expect(seen.filter((url) => url === '/ok')).toHaveLength(1);
  });

  it('gives up on a receiver that does not answer within the timeout', async () => {
    const result = await send(`${base}/silent`, { timeoutMs: 200 });
    expect(result).toMatchObject({ ok: false, status: null, error: 'Timed out after 200 ms' });
    expect(result.latencyMs).toBeGreaterThanOrEqual(190);
  });

  it('reads a bounded part of a large response', async () => {
    expect(await send(`${base}/huge`)).toMatchObject({ ok: true, status: 200 });
  });

  it('keeps the connection to a receiver open between deliveries', async () => {
    const { url, connections, close } = await receiver(() => 'answer');
    try {
      for (let i = 0; i < 3; i += 1) {
        expect(await send(url)).toMatchObject({ ok: true, status: 204 });
      }
      expect(connections()).toBe(1);
    } finally {
      await close();
    }
  });

  it('sends again, once, on a new connection when the kept one is closed as it is reused', async () => {
    // The second request on a connection is cut without an answer, as a receiver closing an
    // idle connection at that moment would.
    const { url, requests, close } = await receiver((nth) => (nth === 2 ? 'cut' : 'answer'));
    try {
      expect(await send(url)).toMatchObject({ ok: true, status: 204 });
      expect(await send(url)).toMatchObject({ ok: true, status: 204, error: null });
      expect(requests()).toBe(3);
    } finally {
      await close();
    }
  });

  it('refuses private targets, by address and by name, before sending anything', async () => {
    // A connection kept from a send that allowed private targets is not reused by one that does not.
    const local = base.replace('127.0.0.1', 'localhost') + '/ok';
    expect(await send(local)).toMatchObject({ ok: true, status: 200 });
    const before = seen.length;
    const literal = await send(`${base}/ok`, { allowPrivateTargets: false });
    expect(literal).toMatchObject({ ok: false, status: null });
    expect(literal.error).toContain('not a public address');
    const named = await send(base.replace('127.0.0.1', 'localhost') + '/ok', {
      allowPrivateTargets: false,
    });
    expect(named).toMatchObject({ ok: false, status: null });
    expect(named.error).toContain('not a public address');
    expect(seen.length).toBe(before);
  });
});

describe('webhook registration with WEBHOOK_ALLOW_PRIVATE_TARGETS=false', () => {
  const ctx = useTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false' } });

  it.each(['http://127.0.0.1:9/x', 'http://localhost/x', 'http://[::1]/x', 'http://10.0.0.7/x'])(
    'refuses %s',
    async (url) => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        payload: { url },
      });
      expect(response.statusCode).toBe(422);
      expect(response.json<{ detail: { msg: string }[] }>().detail[0]?.msg).toBe(
        'URL must point at a public address',
      );
    },
  );
});
