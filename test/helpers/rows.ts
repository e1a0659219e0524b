import type { ClickHouseClient } from '@clickhouse/client';
import { insertRows as insertPlanned } from '../../ingest/src/sink/insert.ts';
import {
  type Row,
  TABLE_SCHEMA,
  type TableName,
  type TableRows,
  writeRow,
} from '../../ingest/src/validate/plan-batch.ts';
import { RowBinaryWriter } from '../../ingest/src/validate/row-binary.ts';

/** Rows (as toRow makes them) as a table's planned rows. */
export function planRows(table: TableName, rows: readonly Row[]): TableRows {
  const w = new RowBinaryWriter();
  for (const r of rows) writeRow(table, w, r);
  return { rows: w, ids: rows.map((r) => r.event_id) };
}

/** Rows (as toRow makes them) as the bytes ingest would insert. */
export function encodeRows(table: TableName, rows: readonly Row[]): Buffer {
  return planRows(table, rows).rows.bytes();
}

/** Insert rows (as toRow makes them) the way ingest does: RowBinary through insertRows. */
export function insertRows(ch: ClickHouseClient, table: TableName, rows: readonly Row[]): Promise<void> {
  return insertPlanned(ch, table, planRows(table, rows));
}

/**
 * A table's RowBinary bytes read back as rows by column name: the test-side reader, written
 * from the format's description, not from the writer (a chDB round trip checks both agree with
 * ClickHouse).
 */
export function decodeRows(table: TableName, buf: Buffer): Record<string, string | number>[] {
  const out: Record<string, string | number>[] = [];
  let o = 0;
  while (o < buf.length) {
    const row: Record<string, string | number> = {};
    for (const c of TABLE_SCHEMA[table]) {
      switch (c.type) {
        case 'String': {
          let n = 0;
          let shift = 0;
          for (;;) {
            const b = buf[o++]!;
            n += (b & 0x7f) * 2 ** shift;
            shift += 7;
            if (b < 0x80) break;
          }
          row[c.name] = buf.toString('utf8', o, o + n);
          o += n;
          break;
        }
        case 'UInt8':
          row[c.name] = buf.readUInt8(o);
          o += 1;
          break;
        case 'UInt16':
          row[c.name] = buf.readUInt16LE(o);
          o += 2;
          break;
        case 'Float64':
          row[c.name] = buf.readDoubleLE(o);
          o += 8;
          break;
        default:
          row[c.name] = Number(buf.readBigInt64LE(o));
          o += 8;
      }
    }
    if (o > buf.length) throw new Error(`truncated row at byte ${o} of ${buf.length}`);
    out.push(row);
  }
  return out;
}
