/**
 * Coalesces frames written in the same tick into one WebSocket message, so a
 * small response (head + body + FIN) costs one message and one syscall, and
 * a burst of request heads under load shares one message too.
 * Frames of BATCH_LIMIT_BYTES or more are never held back behind a batch.
 */
export const BATCH_LIMIT_BYTES = 64 * 1024;

export class FrameBatcher {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private scheduled = false;

  constructor(private readonly sink: (message: Uint8Array) => void) {}

  push(frame: Uint8Array): void {
    if (this.bytes + frame.byteLength > BATCH_LIMIT_BYTES) this.flush();
    if (frame.byteLength >= BATCH_LIMIT_BYTES) {
      this.sink(frame);
      return;
    }
    this.parts.push(frame);
    this.bytes += frame.byteLength;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  private readonly flushBound = () => this.flush();

  flush(): void {
    this.scheduled = false;
    if (this.parts.length === 0) return;
    const msg = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    this.sink(msg);
  }

  /** Drop anything pending (the connection is gone). */
  clear(): void {
    this.parts = [];
    this.bytes = 0;
  }
}
