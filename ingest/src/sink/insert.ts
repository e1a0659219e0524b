import type { ClickHouseClient } from '@clickhouse/client';
import { TABLE_COLUMNS, type TableName } from '../validate/plan-batch.ts';
import { insertEncoded } from './warehouse.ts';

/** JSONCompactEachRow lines (encodeRow) as the insert's bytes: one string, one UTF-8 conversion. */
export function encodeLines(lines: readonly string[]): Buffer {
  return Buffer.from(`${lines.join('\n')}\n`);
}

/** One synchronous insert of encoded rows into a raw table (and through its materialized views). */
export async function insertLines(
  ch: ClickHouseClient,
  table: TableName,
  lines: readonly string[],
): Promise<void> {
  if (lines.length === 0) return;
  await insertEncoded(ch, {
    table,
    columns: TABLE_COLUMNS[table],
    format: 'JSONCompactEachRow',
    payload: encodeLines(lines),
  });
}
