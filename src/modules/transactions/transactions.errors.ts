import { AppError } from '../../platform/errors.js';

// The old service's messages are part of the v1 contract: clients match on them.

/** Read or delete of an unknown or malformed id. */
export const transactionNotFound = (id: string) =>
  new AppError('TRANSACTION_NOT_FOUND', `Transaction with id: ${id} not found.`);

/** Update of an unknown or malformed id (the old service worded this one differently). */
export const transactionNotFoundForUpdate = (id: string) =>
  new AppError('TRANSACTION_NOT_FOUND', `Transaction not found for ID: ${id}`);

export const historyNotFound = (userId: string) =>
  new AppError(
    'TRANSACTION_HISTORY_NOT_FOUND',
    `Transaction history not found for user ID ${userId}`,
  );

export const versionMismatch = (id: string, version: number) =>
  new AppError(
    'PRECONDITION_FAILED',
    `Transaction ${id} has changed: If-Match does not match its current version ${version}`,
  );
