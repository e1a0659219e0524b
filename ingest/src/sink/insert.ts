import type { ClickHouseClient } from '@clickhouse/client';
import { compactRows, type Row, TABLE_COLUMNS, type TableName } from '../validate/plan-batch.ts';
import { INSERT_SETTINGS } from './warehouse.ts';

/** One synchronous insert of rows into a raw table (and through its materialized views). */
export async function insertRows(
  ch: ClickHouseClient,
  table: TableName,
  rows: readonly Row[],
): Promise<void> {
  await ch.insert({
    table,
    values: compactRows(table, rows),
    columns: TABLE_COLUMNS[table] as [string, ...string[]],
    format: 'JSONCompactEachRow',
    clickhouse_settings: INSERT_SETTINGS,
  });
}
