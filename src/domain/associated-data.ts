/*
 * What each encrypted value is bound to (AES-GCM associated data): a ciphertext copied onto
 * another row fails to decrypt. Shared by the writers and by key rotation, which re-encrypts.
 */

/** A webhook's signing secret is bound to its webhook. */
export const secretAssociatedData = (webhookId: string) => `webhook-secret:${webhookId}`;

/** A stored idempotent response is bound to its key: moved to another key, it does not decrypt. */
export const idempotencyAssociatedData = (scope: string, key: string) =>
  `idempotency:${scope}:${key}`;
