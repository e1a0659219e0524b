import type { ClickHouseClient } from '@clickhouse/client';
import { TABLE_SCHEMA, type TableName, type TableRows } from '../validate/plan-batch.ts';
import { insertEncoded } from './warehouse.ts';

/** One synchronous insert of a table's planned rows (and through its materialized views). */
export async function insertRows(ch: ClickHouseClient, table: TableName, rows: TableRows): Promise<void> {
  if (rows.ids.length === 0) return;
  await insertEncoded(ch, { table, columns: TABLE_SCHEMA[table], payload: rows.rows.bytes() });
}
