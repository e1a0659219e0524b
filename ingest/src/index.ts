export {
  checkReadOnly,
  runSql,
  type SqlReply,
  type SqlRequest,
  sqlRequestSchema,
} from './analytics/sql-service.ts';
export { type IngestConfig, loadIngestConfig } from './config.ts';
export { readMigrations, runMigrations, splitStatements } from './sink/migrate.ts';
export { createWarehouse } from './sink/warehouse.ts';
export { planBatch, toRow } from './validate/plan-batch.ts';
