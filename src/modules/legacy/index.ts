/**
 * Crossing over from the old FastAPI + MongoDB service: its mongoexport imported (Fernet names
 * decrypted, ObjectIds kept as `legacy_id`), and this service's data exported (and read back).
 */
export { FernetKey, FernetKeyError, FernetTokenError } from './fernet.js';
export {
  decodeExportedDocument,
  decodeLegacyDocument,
  idForObjectId,
  isObjectId,
  objectIdTime,
  type Decoded,
  type ImportRow,
} from './documents.js';
export { DOCUMENT_BYTES_MAX, readDocuments, type RawDocument } from './reader.js';
export {
  IMPORT_BATCH_ROWS_DEFAULT,
  IMPORT_BATCH_ROWS_MAX,
  runImport,
  type ImportCounts,
  type ImportOptions,
  type ImportResult,
  type Rejection,
} from './import.js';
export { csvCell, runExport, type ExportFormat, type ExportedTransaction } from './export.js';
export { createProgress, type Progress, type ProgressSink } from './progress.js';
export {
  MIGRATION_USAGE,
  runMigrationCommand,
  type MigrationContext,
  type MigrationOptions,
} from './legacy.commands.js';
