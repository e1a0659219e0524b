import type { ClickHouseClient } from '@clickhouse/client';
import { type Row, TABLE_COLUMNS, type TableName } from '../validate/plan-batch.ts';
import { insertEncoded } from './warehouse.ts';

/**
 * Rows as JSONCompactEachRow: one JSON array per line, in TABLE_COLUMNS order, encoded once as
 * one string and one UTF-8 conversion.
 */
export function encodeRows(table: TableName, rows: readonly Row[]): Buffer {
  const cols = TABLE_COLUMNS[table];
  let text = '';
  // A missing value goes as null, which the column turns into its default.
  for (const r of rows) text += `${JSON.stringify(cols.map((c) => r[c] ?? null))}\n`;
  return Buffer.from(text);
}

/** One synchronous insert of rows into a raw table (and through its materialized views). */
export async function insertRows(
  ch: ClickHouseClient,
  table: TableName,
  rows: readonly Row[],
): Promise<void> {
  if (rows.length === 0) return;
  await insertEncoded(ch, {
    table,
    columns: TABLE_COLUMNS[table],
    format: 'JSONCompactEachRow',
    payload: encodeRows(table, rows),
  });
}
