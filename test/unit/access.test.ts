import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  callerIdentity,
  hasScope,
  installAccessControl,
  SCOPES,
  type Principal,
} from '../../src/platform/auth.js';
import { createRateLimiter, memoryRateLimitStore } from '../../src/platform/rate-limit.js';
import { createLogger } from '../../src/platform/logging.js';

function appWithAccessControl() {
  const app = Fastify();
  installAccessControl(app, {
    authenticate: async () => ({ ok: false, reason: 'invalid' }),
    isOpen: async () => false,
    limiter: createRateLimiter({
      store: memoryRateLimitStore(),
      windowSeconds: 60,
      logger: createLogger('silent'),
    }),
    rateLimitMax: 0,
    rateLimitIpMax: 0,
  });
  return app;
}

describe('route access declarations', () => {
  it('refuses a route that does not say who may call it', () => {
    const app = appWithAccessControl();
    expect(() => app.get('/forgotten', async () => 'open to all?')).toThrow(/config\.access/);
  });

  it('records every declared route with its access', async () => {
    const app = appWithAccessControl();
    app.get('/open', { config: { access: 'public' } }, async () => 'ok');
    app.post(
      '/things',
      { config: { access: { scope: 'transactions:write', owner: 'body:user_id' } } },
      async () => 'ok',
    );
    await app.ready();
    expect(app.accessRoutes).toContainEqual({ method: 'GET', url: '/open', access: 'public' });
    expect(app.accessRoutes).toContainEqual({
      method: 'POST',
      url: '/things',
      access: { scope: 'transactions:write', owner: 'body:user_id' },
    });
    await app.close();
  });
});

describe('scopes', () => {
  const key = (...scopes: (typeof SCOPES)[number][]): Principal => ({
    kind: 'key',
    keyId: 'k1',
    scopes: new Set(scopes),
  });

  it('admin implies every scope; other scopes imply only themselves', () => {
    for (const scope of SCOPES) expect(hasScope(key('admin'), scope)).toBe(true);
    expect(hasScope(key('transactions:read'), 'transactions:read')).toBe(true);
    expect(hasScope(key('transactions:read'), 'transactions:write')).toBe(false);
    expect(hasScope(key('transactions:write'), 'transactions:read')).toBe(false);
  });

  it('user tokens hold the data scopes of their own user, never admin or webhooks', () => {
    const user: Principal = { kind: 'user', userId: 'u1' };
    expect(hasScope(user, 'transactions:read')).toBe(true);
    expect(hasScope(user, 'analytics:read')).toBe(true);
    expect(hasScope(user, 'admin')).toBe(false);
    expect(hasScope(user, 'webhooks:manage')).toBe(false);
  });

  it('gives each caller its own identity (the idempotency scope)', () => {
    expect(callerIdentity(key('admin'))).toBe('k1');
    expect(callerIdentity({ kind: 'user', userId: 'u1' })).toBe('user:u1');
    expect(callerIdentity({ kind: 'anonymous' })).toBe('anonymous');
  });
});

describe('rate limiter', () => {
  const limiter = () =>
    createRateLimiter({
      store: memoryRateLimitStore(),
      windowSeconds: 60,
      logger: createLogger('silent'),
    });

  it('lets exactly max requests through per identity and window', async () => {
    const rl = limiter();
    const allowed: boolean[] = [];
    for (let i = 0; i < 5; i += 1) allowed.push((await rl.check('a', 3)).allowed);
    expect(allowed).toEqual([true, true, true, false, false]);
    expect((await rl.check('b', 3)).allowed).toBe(true);
    expect(await rl.check('a', 3)).toMatchObject({ limit: 3, remaining: 0 });
  });

  it('0 means unlimited', async () => {
    const rl = limiter();
    for (let i = 0; i < 100; i += 1) expect((await rl.check('a', 0)).allowed).toBe(true);
  });

  it('keeps counting in memory when its store fails', async () => {
    const rl = createRateLimiter({
      store: {
        kind: 'redis',
        hit: async () => {
          throw new Error('Connection is closed');
        },
        close: async () => undefined,
      },
      windowSeconds: 60,
      logger: createLogger('silent'),
    });
    const allowed: boolean[] = [];
    for (let i = 0; i < 3; i += 1) allowed.push((await rl.check('a', 2)).allowed);
    expect(allowed).toEqual([true, true, false]);
  });
});
