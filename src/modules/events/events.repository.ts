import { v7 as uuidv7 } from 'uuid';
import { events, type EventType } from '../../db/schema/index.js';
import type { Db } from '../../db/client.js';

export interface NewEvent {
  type: EventType;
  userId: string;
  transactionId: string;
  payload: Record<string, unknown>;
}

/**
 * Appends to the outbox. Call it with the database transaction of the change it describes, so the
 * event exists exactly when the change does.
 */
export async function appendEvent(dbTx: Db, event: NewEvent): Promise<string> {
  const id = uuidv7();
  await dbTx.insert(events).values({ id, ...event });
  return id;
}
