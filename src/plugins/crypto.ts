import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import {
  FieldCipher,
  loadOrCreateDevKeyRing,
  parseKeyRing,
  type KeyRing,
} from '../platform/crypto.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Encrypts and decrypts personal fields (full_name, webhook secrets) with the key ring. */
    cipher: FieldCipher;
  }
}

/** Loads the key ring from config, or in development a key generated once into DATA_DIR. */
export async function loadKeyRing(config: Config): Promise<KeyRing> {
  const ring = parseKeyRing({ secretKey: config.secretKey, encryptionKeys: config.encryptionKeys });
  if (ring) return ring;
  // config.ts already refuses production without a key.
  return loadOrCreateDevKeyRing(config.dataDir);
}

/** The field cipher (`app.cipher`) over the given key ring or the configured one. Opens nothing. */
export const cryptoPlugin = fp<{ config: Config; keyRing?: KeyRing | undefined }>(
  async (app, { config, keyRing }) => {
    app.decorate('cipher', new FieldCipher(keyRing ?? (await loadKeyRing(config))));
  },
  { name: 'crypto', fastify: '5.x' },
);
