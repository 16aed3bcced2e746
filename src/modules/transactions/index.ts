/*
 * The transactions module's public face: the resource (create, read, update, delete, history)
 * and its rules. Other code imports the module only from here.
 */
export { encodeCursor } from './cursor.js';
export {
  CREATE_STATEMENT,
  INSERT_COLUMNS as TRANSACTION_INSERT_COLUMNS,
  type TransactionRow,
} from './transactions.repository.js';
export { transactionsRoutes } from './transactions.routes.js';
export { CreateTransactionBody, type Transaction } from './transactions.schemas.js';
export { transactionView } from './transactions.views.js';
export { DESCRIPTION_LENGTH_MAX, FULL_NAME_LENGTH_MAX } from './transactions.limits.js';
export {
  createTransactionsService,
  eventPayload,
  storedCurrency,
  storedFullName,
  transactionDateOf,
  type TransactionsService,
} from './transactions.service.js';
