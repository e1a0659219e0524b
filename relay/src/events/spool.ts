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
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A spool record: text, or parts (text and UTF-8 bytes) written one after another. */
export type SpoolRecord = string | readonly (string | Uint8Array)[];

const NEWLINE = Buffer.from('\n');

/** A record could not be written (disk full, I/O error); the segment is left as it was. */
export class SpoolWriteError extends Error {
  override name = 'SpoolWriteError';
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
    const bufs: Uint8Array[] = [Buffer.from(maybePublished ? '1' : '0')];
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
    // Keep the in-memory view of a segment being read and written at once current.
    if (this.readLines && this.segments.length === 1)
      this.readLines.push(Buffer.concat(bufs, size - 1).toString('utf8'));
    return true;
  }

  /**
   * Read the oldest segment ahead of `peek`, off the event loop, when that segment is complete
   * (no longer appended to): a full segment is up to `segmentBytes` (8 MiB) of records. The
   * segment still being written is left to `peek`, which reads it synchronously so that
   * records appended meanwhile are neither lost nor read twice.
   */
  async prepare(): Promise<void> {
    const head = this.segments[0];
    if (!head || this.readLines) return;
    if (head === this.segments.at(-1) && this.writeFd !== undefined) return;
    const raw = await readFile(this.file(head.seq), 'utf8');
    // Another caller may have loaded or dropped it while this read was in flight.
    if (this.readLines || this.segments[0] !== head) return;
    this.readLines = raw.split('\n').filter((l) => l.length > 0);
    this.readCursor = 0;
  }

  /** The oldest record not yet acknowledged. */
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
