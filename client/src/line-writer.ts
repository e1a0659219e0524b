import type { Writable } from 'node:stream';

/**
 * Output still queued in this process beyond which per-request lines are dropped. Writes to a pipe
 * are asynchronous in Node: when whatever reads `wingman`'s output stops reading (a pager left
 * open, a parent that is busy), every line waits in memory. At ~8000 requests/s, a client
 * whose output went unread for 20-40 s grew from ~140 to 250-320 MB RSS and used up to 1.7 times
 * as much CPU per request (docs/performance.md, eighteenth session).
 */
export const MAX_PENDING_OUTPUT_BYTES = 1024 * 1024;

/**
 * The console's lines, batched per tick: one write per burst of requests, not one per request.
 * Request lines are dropped while more than `maxPendingBytes` of output waits unread, and counted;
 * once the reader catches up, one line says how many were not shown. Every other line (the
 * session's URLs, disconnects, errors) is always written. A terminal or a file takes writes
 * synchronously, so nothing waits and nothing is dropped there.
 */
export class LineWriter {
  private lines: string[] = [];
  /** Which of `lines` are request lines (those may be dropped). */
  private droppable: boolean[] = [];
  /** Request lines dropped since the last "not shown" line. */
  private dropped = 0;
  /** A 'drain' listener is set: the count is written once the reader catches up, traffic or not. */
  private awaitingDrain = false;

  constructor(
    private readonly out: Writable,
    /** The "not shown" line, given the count (plain or JSON, as the rest of the output). */
    private readonly droppedLine: (count: number) => string,
    private readonly maxPendingBytes = MAX_PENDING_OUTPUT_BYTES,
  ) {}

  /** A line that is always written. */
  line(s: string): void {
    this.add(s, false);
  }

  /** One request's line: dropped (and counted) while the output is not being read. */
  request(s: string): void {
    this.add(s, true);
  }

  private add(s: string, droppable: boolean): void {
    this.droppable.push(droppable);
    if (this.lines.push(s) === 1) setImmediate(() => this.flush());
  }

  /** Write this tick's lines. `final` (at exit): say how many were not shown even if still behind. */
  flush(final = false): void {
    const behind = this.out.writableLength > this.maxPendingBytes;
    let lines = this.lines;
    if (behind) {
      const droppable = this.droppable;
      lines = lines.filter((_, i) => !droppable[i]);
      this.dropped += this.lines.length - lines.length;
      if (this.dropped > 0 && !this.awaitingDrain) {
        this.awaitingDrain = true;
        this.out.once('drain', () => {
          this.awaitingDrain = false;
          this.flush();
        });
      }
    }
    if (this.dropped > 0 && (!behind || final)) {
      // Caught up: the count comes before this tick's lines. At exit while still behind: after them.
      if (behind) lines.push(this.droppedLine(this.dropped));
      else lines.unshift(this.droppedLine(this.dropped));
      this.dropped = 0;
    }
    this.lines = [];
    this.droppable = [];
    if (lines.length > 0) this.out.write(`${lines.join('\n')}\n`);
  }
}
