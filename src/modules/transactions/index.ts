/*
 * The transactions module's public face: the resource (create, read, update, delete, history)
 * and its rules. Other code imports the module only from here.
 */
export { encodeCursor } from './cursor.js';
export { CREATE_STATEMENT } from './transactions.repository.js';
export { transactionsRoutes } from './transactions.routes.js';
export { createTransactionsService, type TransactionsService } from './transactions.service.js';
