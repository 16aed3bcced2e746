import { createHmac, randomBytes } from 'node:crypto';

/** Request headers of a delivery. Receivers dedupe on the event id: delivery is at least once. */
export const SIGNATURE_HEADER = 'fido-signature';
export const EVENT_ID_HEADER = 'fido-event-id';
export const EVENT_TYPE_HEADER = 'fido-event-type';
export const DELIVERY_ID_HEADER = 'fido-delivery-id';

/** A new signing secret: 32 random bytes, with a prefix that makes a leaked one easy to spot. */
export function generateSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** HMAC-SHA256 of "<timestamp>.<raw body>" under `secret`, in hex. */
export function sign(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/**
 * `t=<unix seconds>,v1=<hex>`, with one `v1` per secret: during a rotation's overlap window both
 * the new and the previous secret sign, so a receiver holding either one accepts the delivery.
 */
export function signatureHeader(
  secrets: readonly string[],
  timestamp: number,
  body: string,
): string {
  return [`t=${timestamp}`, ...secrets.map((secret) => `v1=${sign(secret, timestamp, body)}`)].join(
    ',',
  );
}
