/**
 * Rows in ClickHouse's RowBinary format, the bytes ingest inserts
 * (https://clickhouse.com/docs/interfaces/formats/RowBinary): each row's values in column order,
 * numbers little-endian, a string as its UTF-8 length (unsigned LEB128) and bytes, a
 * DateTime64(3) as Int64 milliseconds. ClickHouse reads it without parsing text: chDB's CPU per
 * `requests` row went from ~10 to ~6 µs against JSONCompactEachRow (docs/performance.md,
 * thirteenth session). RowBinary has no "missing" value, so each column names the default the
 * table would give it (a test checks them against the live schema).
 */

export type ColumnType = 'String' | 'UInt8' | 'UInt16' | 'UInt64' | 'Float64' | "DateTime64(3, 'UTC')";

export interface Column {
  readonly name: string;
  readonly type: ColumnType;
  /** What a row without this value stores: the table's DEFAULT, else the type's zero. */
  readonly default?: string | number;
}

const TWO_32 = 2 ** 32;
/** Strings up to this many UTF-16 units are tried as ASCII first (see string()). */
const SHORT = 32;

/** A growing buffer of RowBinary rows, with where each row starts. */
export class RowBinaryWriter {
  private buf: Buffer;
  private off = 0;
  private readonly starts: number[] = [];

  constructor(capacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(64, capacity));
  }

  /** The rows as one view of the buffer (no copy): valid until the next write. */
  bytes(): Buffer {
    return this.buf.subarray(0, this.off);
  }

  /** Mark the start of a row; its values follow. */
  row(): void {
    this.starts.push(this.off);
  }

  /** A writer with only the rows at `indices` (ascending), copied. */
  pick(indices: readonly number[]): RowBinaryWriter {
    const end = (i: number) => (i + 1 < this.starts.length ? this.starts[i + 1]! : this.off);
    let size = 0;
    for (const i of indices) size += end(i) - this.starts[i]!;
    const w = new RowBinaryWriter(size);
    for (const i of indices) {
      w.starts.push(w.off);
      w.off += this.buf.copy(w.buf, w.off, this.starts[i]!, end(i));
    }
    return w;
  }

  private room(bytes: number): void {
    if (this.off + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + bytes));
    this.buf.copy(bigger, 0, 0, this.off);
    this.buf = bigger;
  }

  string(s: string): void {
    if (s.length === 0) {
      this.room(1);
      this.buf[this.off++] = 0;
      return;
    }
    // At most 3 UTF-8 bytes per UTF-16 unit, plus the length. The bytes are written one byte
    // after the length's first byte: one byte of length (under 128 bytes, the common case) costs
    // no move; a longer string moves up by the extra length bytes.
    this.room(s.length * 3 + 5);
    const buf = this.buf;
    const at = this.off;
    // Short ASCII strings (most of a row: methods, ids, IPs, hosts) are copied here; a call into
    // Buffer#write costs more than the copy for them.
    if (s.length <= SHORT) {
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + 1 + i] = c;
      }
      if (i === s.length) {
        buf[at] = i;
        this.off = at + 1 + i;
        return;
      }
    }
    const n = buf.write(s, at + 1);
    let lenBytes = 1;
    if (n >= 128) {
      lenBytes = n < 2 ** 14 ? 2 : n < 2 ** 21 ? 3 : 4;
      buf.copyWithin(at + lenBytes, at + 1, at + 1 + n);
    }
    let v = n;
    let o = at;
    while (v >= 0x80) {
      buf[o++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[o] = v;
    this.off = at + lenBytes + n;
  }

  uint8(v: number): void {
    this.room(1);
    this.buf[this.off++] = v;
  }

  uint16(v: number): void {
    this.room(2);
    this.off = this.buf.writeUInt16LE(v, this.off);
  }

  /** An integer in the safe range as a 64-bit two's-complement little-endian value (Int64 and UInt64 alike). */
  int64(v: number): void {
    this.room(8);
    const lo = ((v % TWO_32) + TWO_32) % TWO_32;
    this.buf.writeUInt32LE(lo, this.off);
    this.buf.writeInt32LE((v - lo) / TWO_32, this.off + 4);
    this.off += 8;
  }

  float64(v: number): void {
    this.room(8);
    this.off = this.buf.writeDoubleLE(v, this.off);
  }
}

const WRITE: Record<ColumnType, keyof RowBinaryWriter> = {
  String: 'string',
  UInt8: 'uint8',
  UInt16: 'uint16',
  UInt64: 'int64',
  Float64: 'float64',
  "DateTime64(3, 'UTC')": 'int64',
};

const ZERO: Record<ColumnType, string | number> = {
  String: '',
  UInt8: 0,
  UInt16: 0,
  UInt64: 0,
  Float64: 0,
  "DateTime64(3, 'UTC')": 0,
};

/**
 * A function that writes one row (an object with a property per column) as RowBinary, a missing
 * value as its column's default. Compiled once per table so that each column is a fixed property
 * read and a direct call, which V8 inlines (as the JSON row encoder before it).
 */
export function compileRowWriter<R extends object>(
  columns: readonly Column[],
): (w: RowBinaryWriter, row: R) => void {
  const body = columns.map((c) => {
    // Names and defaults come from the table definitions in code, never from input; still, only
    // plain identifiers, and defaults as JSON literals of the column's kind.
    if (!/^[a-z_][a-z0-9_]*$/.test(c.name)) throw new Error(`column ${c.name} is not an identifier`);
    const d = c.default ?? ZERO[c.type];
    if (typeof d !== typeof ZERO[c.type])
      throw new Error(`column ${c.name}: default ${d} is not a ${c.type}`);
    return `w.${WRITE[c.type]}(r.${c.name} ?? ${JSON.stringify(d)});`;
  });
  return new Function('w', 'r', `w.row();\n${body.join('\n')}`) as (w: RowBinaryWriter, row: R) => void;
}

/** The `name Type, …` structure that reads these columns back from RowBinary (ClickHouse's `file()`). */
export function structureOf(columns: readonly Column[]): string {
  return columns.map((c) => `${c.name} ${c.type}`).join(', ');
}
