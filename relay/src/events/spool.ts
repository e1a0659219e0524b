import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writevSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

/** A spool record: text, or parts (text and UTF-8 bytes) written one after another. */
export type SpoolRecord = string | readonly (string | Uint8Array)[];

/** A line's first byte: the record may already be in JetStream, or it never left this process. */
const FLAG_MAYBE_PUBLISHED = Buffer.from('1');
const FLAG_NEW = Buffer.from('0');
const NEWLINE = Buffer.from('\n');

/** A record could not be written (disk full, I/O error); the segment is left as it was. */
export class SpoolWriteError extends Error {
  override name = 'SpoolWriteError';
}

/** The first `bytes` bytes of a file, as text. */
async function readPrefix(path: string, bytes: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(bytes);
    let at = 0;
    while (at < bytes) {
      const { bytesRead } = await fh.read(buf, at, bytes - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return buf.toString('utf8', 0, at);
  } finally {
    await fh.close();
  }
}

/**
 * Append-only disk spool for event envelopes while NATS is unreachable.
 *
 * Records are envelope JSON, one per line (JSON.stringify never emits a raw
 * newline), in segment files `NNNNNNNNNN.seg` of about `segmentBytes`. Reads
 * go oldest first; a segment is deleted once every record in it is published.
 * Each line starts with a flag: `1` when the record may already be in JetStream
 * (its publish was attempted and failed, for example on a timeout), `0` when it
 * never left this process.
 *
 * fsync policy: a segment is fsynced when it is rotated or closed, and the
 * open segment at most `fsyncIntervalMs` after a write. A relay crash loses
 * nothing written (the data is in the page cache); an OS crash or power loss
 * can lose at most the last `fsyncIntervalMs` of spooled envelopes.
 *
 * After a restart every record left on disk is published again from the start
 * of its segment, so all of them count as possibly published; JetStream's
 * duplicate window and ingest's replay check keep those that were already
 * published from counting twice.
 */
export class Spool {
  private segments: { seq: number; bytes: number }[] = [];
  private totalBytes = 0;
  private writeFd: number | undefined;
  private dirty = false;
  /** Records of the oldest segment not yet acknowledged, and the cursor into them. */
  private readLines: string[] | undefined;
  private readCursor = 0;
  /** Records appended to the segment prepare() is reading, while that read is in flight. */
  private appendedDuringRead: { seq: number; lines: string[] } | undefined;
  private readonly timer: NodeJS.Timeout;
  /** Segments up to this one were on disk when this process started. */
  private readonly inheritedUpTo: number;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly segmentBytes = 8 * 1024 * 1024,
    fsyncIntervalMs = 1000,
  ) {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir).sort()) {
      const m = /^(\d{10})\.seg$/.exec(f);
      if (!m) continue;
      const bytes = statSync(join(dir, f)).size;
      if (bytes === 0) {
        unlinkSync(join(dir, f));
        continue;
      }
      this.segments.push({ seq: Number(m[1]), bytes });
      this.totalBytes += bytes;
    }
    this.inheritedUpTo = this.segments.at(-1)?.seq ?? 0;
    this.timer = setInterval(() => this.sync(), fsyncIntervalMs);
    this.timer.unref();
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get isEmpty(): boolean {
    return this.segments.length === 0;
  }

  private file(seq: number): string {
    return join(this.dir, `${String(seq).padStart(10, '0')}.seg`);
  }

  /**
   * Append one record: the concatenation of its parts, text or UTF-8 bytes (an envelope goes in
   * as the bytes it was sealed as, with no decoding). No part may hold a newline. False, and
   * nothing written, when the spool is full; a SpoolWriteError when the disk refuses it.
   */
  append(record: SpoolRecord, maybePublished = false): boolean {
    const parts = typeof record === 'string' ? [record] : record;
    const bufs: Uint8Array[] = [maybePublished ? FLAG_MAYBE_PUBLISHED : FLAG_NEW];
    for (const p of parts) bufs.push(typeof p === 'string' ? Buffer.from(p) : p);
    bufs.push(NEWLINE);
    let size = 0;
    for (const b of bufs) size += b.byteLength;
    if (this.totalBytes + size > this.maxBytes) return false;
    let tail = this.segments.at(-1);
    if (!tail || this.writeFd === undefined || tail.bytes >= this.segmentBytes) {
      this.closeWriter();
      const seq = (tail?.seq ?? 0) + 1;
      let fd: number;
      try {
        fd = openSync(this.file(seq), 'a');
      } catch (err) {
        // Nothing changed yet: the next append tries a new segment again.
        throw new SpoolWriteError(`spool segment open failed: ${(err as Error).message}`, { cause: err });
      }
      tail = { seq, bytes: 0 };
      this.segments.push(tail);
      this.writeFd = fd;
    }
    try {
      // One writev per record; a short write is as much a failure as an error.
      const written = writevSync(this.writeFd, bufs);
      if (written !== size) throw new Error(`short write: ${written} of ${size} bytes`);
    } catch (err) {
      // Cut off any partial record, so the segment stays whole lines.
      try {
        ftruncateSync(this.writeFd, tail.bytes);
      } catch {}
      throw new SpoolWriteError(`spool write failed: ${(err as Error).message}`, { cause: err });
    }
    tail.bytes += size;
    this.totalBytes += size;
    this.dirty = true;
    // Keep the in-memory views of a segment being read and written at once current: the loaded
    // lines, and those collected while prepare() reads it.
    const reading = this.appendedDuringRead?.seq === tail.seq ? this.appendedDuringRead.lines : undefined;
    const loaded = this.readLines && this.segments.length === 1 ? this.readLines : undefined;
    if (reading || loaded) {
      const text = Buffer.concat(bufs, size - 1).toString('utf8');
      reading?.push(text);
      loaded?.push(text);
    }
    return true;
  }

  /**
   * Read the oldest segment ahead of `peek`, off the event loop: a segment is up to
   * `segmentBytes` (8 MiB) of records. The segment may still be appended to: the read takes the
   * bytes it has now (appends are synchronous, so those are whole records), and the records
   * appended while the read is in flight are collected in memory, so none is lost or read twice.
   */
  async prepare(): Promise<void> {
    const head = this.segments[0];
    if (!head || this.readLines || this.appendedDuringRead) return;
    const appended = { seq: head.seq, lines: [] as string[] };
    this.appendedDuringRead = appended;
    let raw: string;
    try {
      raw = await readPrefix(this.file(head.seq), head.bytes);
    } finally {
      this.appendedDuringRead = undefined;
    }
    // Another caller may have loaded or dropped it while this read was in flight.
    if (this.readLines || this.segments[0] !== head) return;
    this.readLines = raw.split('\n').filter((l) => l.length > 0);
    for (const line of appended.lines) this.readLines.push(line);
    this.readCursor = 0;
  }

  /** The oldest record not yet acknowledged; without a prepare() first, its segment is read synchronously. */
  peek(): string | undefined {
    while (this.segments.length > 0) {
      if (!this.readLines) {
        const raw = readFileSync(this.file(this.segments[0]!.seq), 'utf8');
        this.readLines = raw.split('\n').filter((l) => l.length > 0);
        this.readCursor = 0;
      }
      if (this.readCursor < this.readLines.length) return this.readLines[this.readCursor]!.slice(1);
      // The oldest segment is fully published.
      this.dropOldest();
    }
    return undefined;
  }

  /** Whether the record `peek` returned may already have been published (replay it as such). */
  get headMaybePublished(): boolean {
    const head = this.segments[0];
    if (!head || !this.readLines) return false;
    return head.seq <= this.inheritedUpTo || this.readLines[this.readCursor]?.[0] === '1';
  }

  /** Acknowledge the record `peek` returned: it is published. */
  ack(): void {
    this.readCursor++;
    if (this.readLines && this.readCursor >= this.readLines.length) this.dropOldest();
  }

  private dropOldest(): void {
    const head = this.segments.shift();
    this.readLines = undefined;
    this.readCursor = 0;
    if (!head) return;
    if (this.segments.length === 0) this.closeWriter();
    this.totalBytes -= head.bytes;
    unlinkSync(this.file(head.seq));
  }

  /** fsync the open segment if anything was written since the last sync. */
  sync(): void {
    if (this.dirty && this.writeFd !== undefined) fsyncSync(this.writeFd);
    this.dirty = false;
  }

  private closeWriter(): void {
    if (this.writeFd === undefined) return;
    this.sync();
    closeSync(this.writeFd);
    this.writeFd = undefined;
  }

  close(): void {
    clearInterval(this.timer);
    this.closeWriter();
  }
}
