import type { ClickHouseClient } from '@clickhouse/client';
import { encodeLines, insertLines } from '../../ingest/src/sink/insert.ts';
import { encodeRow, type Row, type TableName } from '../../ingest/src/validate/plan-batch.ts';

const linesOf = (table: TableName, rows: readonly Row[]) => rows.map((r) => encodeRow(table, r));

/** Rows (as toRow makes them) as the bytes ingest would insert. */
export function encodeRows(table: TableName, rows: readonly Row[]): Buffer {
  return encodeLines(linesOf(table, rows));
}

/** Insert rows (as toRow makes them) the way ingest does: encoded lines through insertLines. */
export function insertRows(ch: ClickHouseClient, table: TableName, rows: readonly Row[]): Promise<void> {
  return insertLines(ch, table, linesOf(table, rows));
}
