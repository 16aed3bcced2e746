import { v7 as uuidv7 } from 'uuid';
import { EVENT_TYPES, type DeliveryState, type EventType } from '../../db/schema/index.js';
import type { FieldCipher } from '../../platform/crypto.js';
import type { Db } from '../../db/client.js';
import {
  AppError,
  invalidCursor,
  validationError,
  type ValidationIssue,
} from '../../platform/errors.js';
import { cursorCodec, cursorFields } from '../../domain/cursor.js';
import { secretAssociatedData } from '../../domain/associated-data.js';
import { isUuid } from '../../domain/ids.js';
import { keysetPage, type Pagination } from '../../domain/pagination.js';
import {
  type PublishedEvent,
  loadEvent,
  PARKED_UNTIL,
  recordManualAttempt,
} from '../events/index.js';
import {
  attemptsOf,
  countWebhooks,
  deleteWebhook,
  findDelivery,
  findWebhook,
  insertWebhook,
  lockWebhookCreation,
  listDeliveries,
  listWebhooks,
  updateWebhook,
  webhookFromJson,
  type AttemptRow,
  type DeliveryRow,
  type WebhookChanges,
  type WebhookRow,
} from './webhooks.repository.js';
import { checkPublicHost, sendWebhook, type SendResult } from './sender.js';
import {
  DELIVERY_ID_HEADER,
  EVENT_ID_HEADER,
  EVENT_TYPE_HEADER,
  generateSecret,
  SIGNATURE_HEADER,
  signatureHeader,
} from './signing.js';
import { SECRET_OVERLAP_HOURS_DEFAULT } from './webhooks.limits.js';
import type { CreateWebhookBody, UpdateWebhookBody } from './webhooks.schemas.js';

/** Deliveries cursors: the last served delivery's position, as digits (src/domain/cursor.ts). */
const deliveriesCursor = cursorCodec<{ position: string }>(
  { position: cursorFields.int64 },
  { armour: 'none' },
);

export interface WebhooksServiceDeps {
  db: Db;
  cipher: FieldCipher;
  timeoutMs: number;
  allowPrivateTargets: boolean;
  maxEndpoints: number;
}

export interface WebhookView {
  id: string;
  url: string;
  description: string | null;
  event_types: EventType[];
  active: boolean;
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface AttemptView {
  attempted_at: string;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  manual: boolean;
}

export interface DeliveryView {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  user_id: string;
  state: DeliveryState;
  attempt_count: number;
  next_attempt_at: string | null;
  retry_until: string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  completed_at: string | null;
  attempts: AttemptView[];
}

const webhookNotFound = (id: string) =>
  new AppError('WEBHOOK_NOT_FOUND', `Webhook with ID ${id} not found`);
const deliveryNotFound = (id: string) =>
  new AppError('DELIVERY_NOT_FOUND', `Delivery with ID ${id} not found`);

export function createWebhooksService(deps: WebhooksServiceDeps) {
  const { db, cipher } = deps;

  async function checkUrl(raw: string, issues: ValidationIssue[]): Promise<string | undefined> {
    const issue = (msg: string) => {
      issues.push({ loc: ['body', 'url'], msg, type: 'value_error' });
      return undefined;
    };
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return issue('Input should be an absolute http or https URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return issue('Only http and https URLs are allowed');
    }
    // Credentials in a URL would be stored and shown in plain text; use a secret path instead.
    if (url.username || url.password) return issue('URL must not contain credentials');
    if (!deps.allowPrivateTargets) {
      // Refused now rather than only when a delivery connects (the sender checks again then: a
      // name may resolve elsewhere later).
      const host = await checkPublicHost(url.hostname);
      if (!host.ok) {
        return issue(
          host.reason === 'unresolvable'
            ? 'URL host name does not resolve'
            : 'URL must point at a public address',
        );
      }
    }
    return url.toString();
  }

  function checkEventTypes(types: readonly string[]): EventType[] {
    // The schema limits the values; duplicates mean nothing, so they are dropped.
    return [...new Set(types)].filter((t): t is EventType =>
      (EVENT_TYPES as readonly string[]).includes(t),
    );
  }

  async function create(body: CreateWebhookBody): Promise<{ webhook: WebhookRow; secret: string }> {
    const issues: ValidationIssue[] = [];
    const url = await checkUrl(body.url, issues);
    if (!url) throw validationError(issues);
    return db.transaction(async (dbTx) => {
      await lockWebhookCreation(dbTx);
      if ((await countWebhooks(dbTx)) >= deps.maxEndpoints) {
        throw new AppError(
          'WEBHOOK_LIMIT_REACHED',
          `At most ${deps.maxEndpoints} webhooks can be registered (WEBHOOK_MAX_ENDPOINTS)`,
        );
      }
      const id = uuidv7();
      const secret = generateSecret();
      const webhook = await insertWebhook(dbTx, {
        id,
        url,
        description: body.description ?? null,
        eventTypes: checkEventTypes(body.event_types ?? []),
        active: body.active ?? true,
        secretCiphertext: cipher.encrypt(secret, secretAssociatedData(id)),
      });
      return { webhook, secret };
    });
  }

  async function get(id: string): Promise<WebhookRow> {
    const webhook = isUuid(id) ? await findWebhook(db, id) : undefined;
    if (!webhook) throw webhookNotFound(id);
    return webhook;
  }

  async function update(id: string, body: UpdateWebhookBody): Promise<WebhookRow> {
    if (!isUuid(id)) throw webhookNotFound(id);
    const issues: ValidationIssue[] = [];
    const changes: WebhookChanges = {};
    if (body.url !== undefined) changes.url = await checkUrl(body.url, issues);
    if (body.description !== undefined) changes.description = body.description;
    if (body.event_types !== undefined) changes.eventTypes = checkEventTypes(body.event_types);
    if (body.active !== undefined) changes.active = body.active;
    if (Object.keys(body).length === 0) {
      issues.push({
        loc: ['body'],
        msg: 'At least one field to update is required: url, description, event_types, active',
        type: 'missing',
      });
    }
    if (issues.length > 0) throw validationError(issues);
    const saved = await updateWebhook(db, id, changes);
    if (!saved) throw webhookNotFound(id);
    return saved;
  }

  async function remove(id: string): Promise<void> {
    if (!isUuid(id) || !(await deleteWebhook(db, id))) throw webhookNotFound(id);
  }

  /**
   * A new secret, shown once. The previous one keeps signing (as a second `v1`) until the overlap
   * ends, so receivers can switch without dropping a delivery.
   */
  async function rotateSecret(
    id: string,
    overlapHours = SECRET_OVERLAP_HOURS_DEFAULT,
  ): Promise<{ webhook: WebhookRow; secret: string }> {
    if (!isUuid(id)) throw webhookNotFound(id);
    return db.transaction(async (dbTx) => {
      const current = await findWebhook(dbTx, id, { forUpdate: true });
      if (!current) throw webhookNotFound(id);
      const secret = generateSecret();
      const webhook = await updateWebhook(dbTx, id, {
        secretCiphertext: cipher.encrypt(secret, secretAssociatedData(id)),
        previousSecretCiphertext: overlapHours > 0 ? current.secretCiphertext : null,
        previousSecretExpiresAt:
          overlapHours > 0 ? new Date(Date.now() + overlapHours * 3_600_000) : null,
      });
      if (!webhook) throw webhookNotFound(id);
      return { webhook, secret };
    });
  }

  /**
   * Decrypted secrets by ciphertext: the worker signs every delivery, and a decryption per
   * delivery was a measurable share of its CPU. A rotated secret has a new ciphertext, so a stale
   * entry is never used; at most two per webhook that may exist, then it starts afresh.
   */
  const decrypted = new Map<string, string>();
  function secretOf(webhookId: string, ciphertext: string): string {
    let secret = decrypted.get(ciphertext);
    if (secret === undefined) {
      if (decrypted.size >= 2 * deps.maxEndpoints) decrypted.clear();
      secret = cipher.decrypt(ciphertext, secretAssociatedData(webhookId));
      decrypted.set(ciphertext, secret);
    }
    return secret;
  }

  /** The secrets that sign now: the current one, and the previous one inside its overlap. */
  function signingSecrets(webhook: WebhookRow, now: Date): string[] {
    const secrets = [secretOf(webhook.id, webhook.secretCiphertext)];
    if (
      webhook.previousSecretCiphertext &&
      webhook.previousSecretExpiresAt &&
      webhook.previousSecretExpiresAt > now
    ) {
      secrets.push(secretOf(webhook.id, webhook.previousSecretCiphertext));
    }
    return secrets;
  }

  /** One signed POST of `event` to the webhook. The body is exactly the bytes signed. */
  async function send(
    webhook: WebhookRow,
    deliveryId: string,
    event: PublishedEvent,
  ): Promise<SendResult> {
    const now = new Date();
    const body = JSON.stringify(event);
    const timestamp = Math.floor(now.getTime() / 1000);
    return sendWebhook({
      url: webhook.url,
      body,
      headers: {
        [SIGNATURE_HEADER]: signatureHeader(signingSecrets(webhook, now), timestamp, body),
        [EVENT_ID_HEADER]: event.id,
        [EVENT_TYPE_HEADER]: event.type,
        [DELIVERY_ID_HEADER]: deliveryId,
      },
      timeoutMs: deps.timeoutMs,
      allowPrivateTargets: deps.allowPrivateTargets,
    });
  }

  async function deliveriesOf(
    webhookId: string,
    query: { state?: DeliveryState | undefined; cursor?: string | undefined; limit: number },
  ): Promise<{ rows: DeliveryView[]; pagination: Pagination }> {
    await get(webhookId);
    const from = query.cursor === undefined ? undefined : deliveriesCursor.decode(query.cursor);
    if (query.cursor !== undefined && !from) throw validationError([invalidCursor('cursor')]);
    const rows = await listDeliveries(db, webhookId, {
      state: query.state,
      before: from && BigInt(from.position),
      limit: query.limit + 1,
    });
    const page = keysetPage(rows, query.limit, (row) =>
      deliveriesCursor.encode({ position: String(row.position) }),
    );
    const attempts = await attemptsOf(
      db,
      page.items.map((row) => row.id),
    );
    return {
      rows: page.items.map((row) => deliveryView(row, attempts.get(row.id) ?? [])),
      pagination: page.pagination,
    };
  }

  async function delivery(webhookId: string, deliveryId: string): Promise<DeliveryView> {
    const row =
      isUuid(webhookId) && isUuid(deliveryId)
        ? await findDelivery(db, webhookId, deliveryId)
        : undefined;
    if (!row) throw deliveryNotFound(deliveryId);
    const attempts = await attemptsOf(db, [row.id]);
    return deliveryView(row, attempts.get(row.id) ?? []);
  }

  /**
   * Sends the delivery again now, whatever its state, and records the attempt as manual. Success
   * completes it; a failure leaves its state (and its place in the retry schedule) as it was.
   */
  async function redeliver(webhookId: string, deliveryId: string): Promise<DeliveryView> {
    const webhook = await get(webhookId);
    const row = isUuid(deliveryId) ? await findDelivery(db, webhookId, deliveryId) : undefined;
    if (!row) throw deliveryNotFound(deliveryId);
    const event = await loadEvent(db, row.eventId);
    if (!event) {
      throw new AppError(
        'EVENT_EXPIRED',
        `The event of delivery ${deliveryId} is past the retention window and cannot be sent again`,
      );
    }
    const result = await send(webhook, row.id, event);
    // The worker's own bookkeeping, so a manual attempt is logged as an automatic one is. The
    // webhook may have been deleted while the attempt was made: then so has the delivery.
    if (!(await recordManualAttempt(db, row.id, result))) throw deliveryNotFound(deliveryId);
    return delivery(webhookId, deliveryId);
  }

  return {
    create,
    list: () => listWebhooks(db),
    get,
    fromRow: webhookFromJson,
    update,
    remove,
    rotateSecret,
    send,
    deliveries: deliveriesOf,
    delivery,
    redeliver,
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;

export function webhookView(row: WebhookRow): WebhookView {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    event_types: row.eventTypes as EventType[],
    active: row.active,
    previous_secret_expires_at: row.previousSecretExpiresAt?.toISOString() ?? null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

function deliveryView(row: DeliveryRow, attempts: AttemptRow[]): DeliveryView {
  return {
    id: row.id,
    webhook_id: row.webhookId ?? '',
    event_id: row.eventId,
    event_type: row.eventType,
    user_id: row.userId,
    state: row.state,
    attempt_count: row.attempts,
    // Null once completed, and while it waits behind an earlier delivery of the same user.
    next_attempt_at:
      row.state === 'pending' && row.nextAttemptAt < PARKED_UNTIL
        ? row.nextAttemptAt.toISOString()
        : null,
    retry_until: row.retryUntil.toISOString(),
    last_status: row.lastStatus,
    last_error: row.lastError,
    created_at: row.createdAt.toISOString(),
    completed_at: row.completedAt?.toISOString() ?? null,
    attempts: attempts.map((a) => ({
      attempted_at: a.attemptedAt.toISOString(),
      status_code: a.statusCode,
      latency_ms: a.latencyMs,
      error: a.error,
      manual: a.manual,
    })),
  };
}
