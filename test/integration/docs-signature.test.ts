import { createHmac } from 'node:crypto';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postTransaction, useTestApp } from '../helpers/app.js';
import { eventually, WebhookReceiver } from '../helpers/webhook-receiver.js';

type Verify = (
  secret: string,
  header: string,
  rawBody: string,
  toleranceSeconds?: number,
) => boolean;

/** docs/events.md's verification snippet, exactly as a reader would copy it. */
async function loadDocsSnippet(directory: string): Promise<Verify> {
  const page = await readFile(new URL('../../docs/events.md', import.meta.url), 'utf8');
  const section = /<!-- verify-signature:start -->([\s\S]*?)<!-- verify-signature:end -->/.exec(
    page,
  )?.[1];
  const code = section && /```js\n([\s\S]*?)```/.exec(section)?.[1];
  if (!code) throw new Error('docs/events.md has no verification snippet between its markers');
  const file = path.join(directory, 'verify.mjs');
  await writeFile(file, code);
  const module = (await import(pathToFileURL(file).href)) as { verifyFidoSignature: Verify };
  return module.verifyFidoSignature;
}

describe('the signature verification in docs/events.md', () => {
  const ctx = useTestApp({ env: { WORKER: 'inline', WORKER_POLL_MS: '50' } });
  let receiver: WebhookReceiver;
  let directory: string;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    directory = await mkdtemp(path.join(os.tmpdir(), 'fido-readme-'));
  });
  afterAll(async () => {
    await receiver.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('accepts a real delivery and refuses a tampered, re-signed or stale one', async () => {
    const verify = await loadDocsSnippet(directory);
    const created = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      payload: { url: receiver.url('/readme') },
    });
    const { secret } = created.json<{ data: { secret: string } }>().data;
    await postTransaction(ctx.app);
    const [delivery] = await eventually(() =>
      receiver.requests.length > 0 ? receiver.requests : undefined,
    );
    const header = String(delivery!.headers['fido-signature']);

    expect(verify(secret, header, delivery!.body)).toBe(true);
    expect(verify(secret, header, delivery!.body.replace('"type"', '"tyqe"'))).toBe(false);
    expect(verify(`${secret}x`, header, delivery!.body)).toBe(false);
    // Correctly signed, but an hour old: a replay.
    const old = Math.floor(Date.now() / 1000) - 3_600;
    const oldSignature = createHmac('sha256', secret)
      .update(`${old}.${delivery!.body}`)
      .digest('hex');
    const stale = `t=${old},v1=${oldSignature}`;
    expect(verify(secret, stale, delivery!.body)).toBe(false);
    expect(verify(secret, stale, delivery!.body, 7_200)).toBe(true);
    expect(verify(secret, 't=abc,v1=zz', delivery!.body)).toBe(false);
  });
});
