import { randomBytes } from 'node:crypto';
import {
  type Envelope,
  EVENT_VERSION,
  type EventInput,
  type Logger,
  newEventId,
  Topology,
} from '@wingman/shared';
import type { EventSink } from './sink.ts';
import type { Spool } from './spool.ts';

export interface PublisherLimits {
  /** Events per envelope. */
  maxEvents: number;
  /** Largest envelope, in bytes of JSON; bigger batches are split. */
  maxEnvelopeBytes: number;
  /** Oldest event in the open envelope waits at most this long. */
  maxAgeMs: number;
  /** Sealed envelopes kept in memory waiting to publish; beyond this they spill to the spool. */
  maxBufferBytes: number;
  publishTimeoutMs: number;
}

export interface PublisherMetrics {
  eventsPublished: { inc(n?: number): void };
  envelopesPublished: { inc(n?: number): void };
  publishLatency: { observe(seconds: number): void };
  bufferDepth: { set(n: number): void };
  spoolBytes: { set(n: number): void };
  eventsDropped: { inc(n?: number): void };
}

export interface Sealed {
  id: string;
  /** The envelope: its UTF-8 bytes as sealed, or its JSON text as read back from the spool. */
  json: Uint8Array | string;
  events: number;
}

/** An envelope as sealed: its UTF-8 bytes, which is how it waits in the in-memory queue. */
export type SealedBytes = Sealed & { json: Uint8Array };

/**
 * A sealed envelope as a spool record: `<events> <id length> <id><envelope JSON>`, so a replay
 * reads the id and the count without parsing the whole envelope (up to 512 KiB) again. The
 * envelope part stays the bytes it was sealed as.
 */
export function toSpoolRecord(s: Sealed): [string, Uint8Array | string] {
  return [`${s.events} ${s.id.length} ${s.id}`, s.json];
}

export function fromSpoolRecord(record: string): Sealed & { json: string } {
  if (record.startsWith('{')) {
    // Written before records had a header: the bare envelope.
    const parsed = JSON.parse(record) as Envelope;
    return { id: parsed.id, json: record, events: parsed.events.length };
  }
  const a = record.indexOf(' ');
  const b = record.indexOf(' ', a + 1);
  const idEnd = b + 1 + Number(record.slice(a + 1, b));
  return { events: Number(record.slice(0, a)), id: record.slice(b + 1, idEnd), json: record.slice(idEnd) };
}

/** Events written into envelopes per turn of the event loop (seal()): ~0.25 ms of work. */
const SEAL_SLICE = 128;
/** Beyond this many full batches waiting to be sealed, the rest are sealed at once. */
const SEAL_BACKLOG_BATCHES = 4;

/**
 * Buffers events off the request path, batches them into envelopes (count and
 * age limits) and publishes each to JetStream with its own Nats-Msg-Id, so a
 * retried publish is stored once. While NATS is down or slow, envelopes spill
 * to the disk spool and are replayed in order once it is back; only a full
 * spool drops events, and those are counted and logged.
 */
export class EventPublisher {
  private open: EventInput[] = [];
  /** emit() time of each open event (its `ts`). */
  private openTs: number[] = [];
  private openSince = 0;
  /** Closed batches waiting to be written into envelopes (seal()), oldest first. */
  private sealing: { events: EventInput[]; times: number[] }[] = [];
  /** Events of `sealing[0]` already written into `builder` or queued. */
  private sealedUpTo = 0;
  /** The envelope `sealing[0]` is being written into, between slices. */
  private builder: EnvelopeBuilder | undefined;
  private sealScheduled = false;
  private queue: SealedBytes[] = [];
  /** Buffers of published envelopes, written again by the next ones (BufferPool). */
  private readonly pool: BufferPool;
  private queueBytes = 0;
  private seq = 0;
  private readonly bootId = randomBytes(4).toString('hex');
  private sink: EventSink | undefined;
  private pumping = false;
  /** The spool's head record failed to publish once: it may be in JetStream already. */
  private headAttempted = false;
  private closed = false;
  /** After a failed publish, no retry before this time (doubling backoff), unless NATS reconnects. */
  private retryAt = 0;
  private failures = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly subject: string;
  private readonly relayIdJson: string;
  /** The constant parts of every event's stamps, around its id and time. */
  private readonly stampsHead: string;
  private readonly stampsTail: string;

  constructor(
    private readonly relayId: string,
    private readonly spool: Spool,
    private readonly limits: PublisherLimits,
    private readonly metrics: PublisherMetrics,
    private readonly log: Logger,
  ) {
    this.pool = new BufferPool(limits.maxEnvelopeBytes);
    this.subject = Topology.eventsSubject(relayId);
    this.relayIdJson = JSON.stringify(relayId);
    this.stampsHead = `{"v":${EVENT_VERSION},"event_id":"`;
    this.stampsTail = `,"relay_id":${this.relayIdJson}`;
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(limits.maxAgeMs / 2)));
    this.timer.unref();
    metrics.spoolBytes.set(spool.bytes);
  }

  /**
   * Record one event that happened at `ts`. Cheap and synchronous: it keeps the object and its
   * time, and never waits on NATS or disk. Ids, stamps and JSON are done per envelope (seal()).
   */
  emit(input: EventInput, ts = Date.now()): void {
    if (this.closed) return;
    if (this.open.length === 0) this.openSince = Date.now();
    this.open.push(input);
    this.openTs.push(ts);
    if (this.open.length >= this.limits.maxEvents) this.seal();
  }

  /** Publishing target; undefined while NATS is unreachable (envelopes go to the spool). */
  setSink(sink: EventSink | undefined): void {
    this.sink = sink;
    this.retryAt = 0;
    if (sink) this.pump();
  }

  private tick(): void {
    if (this.open.length > 0 && Date.now() - this.openSince >= this.limits.maxAgeMs) this.seal();
    if (this.sink && (this.queue.length > 0 || !this.spool.isEmpty)) this.pump();
  }

  /**
   * Close the open batch. Its events are written into envelopes SEAL_SLICE at a time, one slice
   * per turn of the event loop, so sealing a full batch (~2 ms of JSON for 1000 events) never
   * holds up the relay's sockets for long. Batches are sealed strictly in order.
   */
  private seal(): void {
    if (this.open.length === 0) return;
    this.sealing.push({ events: this.open, times: this.openTs });
    this.open = [];
    this.openTs = [];
    // A loop that cannot keep up (or a burst) must not pile up unsealed events without bound.
    if (this.unsealed > SEAL_BACKLOG_BATCHES * this.limits.maxEvents) this.sealSome(Number.POSITIVE_INFINITY);
    else if (!this.sealScheduled) {
      this.sealScheduled = true;
      setImmediate(this.sealTurn);
    }
  }

  private readonly sealTurn = (): void => {
    this.sealScheduled = false;
    // close() sealed everything itself, and its spool is closed: nothing to publish from here.
    if (this.closed) return;
    this.sealSome(SEAL_SLICE);
    if (this.sealing.length > 0) {
      this.sealScheduled = true;
      setImmediate(this.sealTurn);
    }
  };

  /** Seal up to `budget` events of the pending batches, oldest first, then publish. */
  private sealSome(budget: number): void {
    while (budget > 0 && this.sealing.length > 0) {
      const { events, times } = this.sealing[0]!;
      const end = Math.min(events.length, this.sealedUpTo + budget);
      // Each event's JSON, its stamps first, is written straight into the envelope's bytes: no
      // string of the whole envelope is built, joined or encoded. Envelopes hold at most
      // maxEnvelopeBytes (NATS max_payload is 1 MiB); one event bigger than that still goes, alone.
      let b = this.builder;
      for (let i = this.sealedUpTo; i < end; i++) {
        const ts = times[i]!;
        const stamps = `${this.stampsHead}${newEventId(ts)}","ts":${ts}${this.stampsTail}`;
        // `fields` is `{"type":...}`: its first byte is replaced by the comma after the stamps.
        const fields = JSON.stringify(events[i]);
        if (b && !b.tryAppend(stamps, fields)) {
          this.enqueue(b);
          b = undefined;
        }
        if (!b) {
          b = this.newBuilder(Buffer.byteLength(stamps) + Buffer.byteLength(fields));
          b.tryAppend(stamps, fields);
        }
      }
      budget -= end - this.sealedUpTo;
      if (end < events.length) {
        this.sealedUpTo = end;
        this.builder = b;
      } else {
        // One batch, one or more envelopes of its own: a batch never shares an envelope.
        if (b) this.enqueue(b);
        this.builder = undefined;
        this.sealing.shift();
        this.sealedUpTo = 0;
      }
    }
    this.reportDepth();
    this.pump();
  }

  /** An envelope with room for maxEnvelopeBytes, or for one event of `eventBytes` if that is more. */
  private newBuilder(eventBytes: number): EnvelopeBuilder {
    const id = `${this.relayId}-${this.bootId}-${++this.seq}`;
    const head = `{"v":1,"relay_id":${this.relayIdJson},"id":"${id}","events":[`;
    return new EnvelopeBuilder(
      id,
      head,
      Math.max(this.limits.maxEnvelopeBytes, Buffer.byteLength(head) + eventBytes + 3),
      this.pool,
    );
  }

  /** One envelope (one Nats-Msg-Id), queued in memory or spooled. */
  private enqueue(b: EnvelopeBuilder): void {
    const sealed = b.finish();
    const held = heldBytes(sealed);
    // Keep order: once anything is spooled, later envelopes queue behind it on disk.
    if (
      !this.sink ||
      Date.now() < this.retryAt ||
      !this.spool.isEmpty ||
      this.queueBytes + held > this.limits.maxBufferBytes
    ) {
      this.toSpool(sealed);
      // Written to the spool's file (a copy) and never handed to the NATS thread: free to reuse.
      this.pool.give(sealed.json.buffer);
    } else {
      this.queue.push(sealed);
      this.queueBytes += held;
    }
  }

  private toSpool(s: Sealed, maybePublished = false): void {
    let stored: boolean;
    try {
      stored = this.spool.append(toSpoolRecord(s), maybePublished);
    } catch (err) {
      // A disk error must not reach the request path that emitted the event: count and log it.
      this.metrics.eventsDropped.inc(s.events);
      this.log.error(
        { err: (err as Error).message, envelope: s.id, events: s.events },
        'event spool write failed: events dropped',
      );
      return;
    }
    if (stored) {
      this.metrics.spoolBytes.set(this.spool.bytes);
      return;
    }
    this.metrics.eventsDropped.inc(s.events);
    this.log.error(
      { envelope: s.id, events: s.events, spoolBytes: this.spool.bytes },
      'event spool full: events dropped',
    );
  }

  /**
   * Share of the in-memory queue (EVENT_BUFFER_MAX_BYTES) in use, 0 to 1. At 1, further
   * envelopes go to the disk spool; a producer that wants to stay off the disk (a benchmark)
   * waits while it is high.
   */
  get queueFill(): number {
    return this.queueBytes / this.limits.maxBufferBytes;
  }

  /** Envelopes wait in the disk spool (NATS was away or slow, or the queue full). */
  get spooled(): boolean {
    return !this.spool.isEmpty;
  }

  /** Events in `sealing` not yet written into an envelope (a walk over the few waiting batches). */
  private get unsealed(): number {
    let n = -this.sealedUpTo;
    for (const batch of this.sealing) n += batch.events.length;
    return n;
  }

  private reportDepth(): void {
    let n = this.open.length + this.unsealed + (this.builder?.events ?? 0);
    for (const s of this.queue) n += s.events;
    this.metrics.bufferDepth.set(n);
  }

  /** Publish in order: the spool first (older), then the in-memory queue. One publish in flight. */
  private pump(): void {
    if (this.pumping || !this.sink || Date.now() < this.retryAt) return;
    this.pumping = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      await this.drainLoop();
    } finally {
      // Cleared as the loop ends, not a microtask later: an envelope sealed in between would
      // otherwise see `pumping` still set and wait for the next seal.
      this.pumping = false;
    }
  }

  private async drainLoop(): Promise<void> {
    while (this.sink) {
      const fromSpool = !this.spool.isEmpty;
      let sealed: Sealed | undefined;
      if (fromSpool) {
        await this.spool.prepare();
        if (!this.sink) return;
        const record = this.spool.peek();
        if (record === undefined) continue;
        sealed = fromSpoolRecord(record);
      } else sealed = this.queue[0];
      if (!sealed) return;
      const started = performance.now();
      try {
        await this.sink.publish(this.subject, sealed.json, {
          msgID: sealed.id,
          timeoutMs: this.limits.publishTimeoutMs,
          // Only an envelope that may already be in JetStream makes ingest check for stored events;
          // one that merely waited in the spool (NATS away, or the queue full) is new.
          replayed: fromSpool && (this.spool.headMaybePublished || this.headAttempted),
        });
      } catch (err) {
        this.failures++;
        const backoffMs = Math.min(30_000, 500 * 2 ** Math.min(this.failures - 1, 6));
        this.retryAt = Date.now() + backoffMs;
        this.log.warn(
          { err: (err as Error).message, envelope: sealed.id, retryInMs: backoffMs },
          'publish failed; spooling',
        );
        // A failed publish may still have been stored (a timeout after the server wrote it).
        if (fromSpool) this.headAttempted = true;
        this.spillQueue(!fromSpool);
        return;
      }
      this.failures = 0;
      this.metrics.publishLatency.observe((performance.now() - started) / 1000);
      this.metrics.envelopesPublished.inc();
      this.metrics.eventsPublished.inc(sealed.events);
      if (fromSpool) {
        this.spool.ack();
        this.headAttempted = false;
        this.metrics.spoolBytes.set(this.spool.bytes);
      } else {
        const published = this.queue.shift()!;
        this.queueBytes -= heldBytes(published);
        // JetStream has it (the NATS thread reported the PubAck), so nothing reads these bytes any
        // more. After a failed publish the buffer is not reused: nats.js may still hold it.
        this.pool.give(published.json.buffer);
        this.reportDepth();
      }
    }
  }

  /** Move the in-memory queue to the spool, preserving order; the first entry's publish may have been attempted. */
  private spillQueue(firstAttempted = false): void {
    for (let i = 0; i < this.queue.length; i++) this.toSpool(this.queue[i]!, firstAttempted && i === 0);
    this.queue = [];
    this.queueBytes = 0;
    this.reportDepth();
  }

  /**
   * Seal what is open and publish everything within `timeoutMs`; whatever is
   * left goes to the spool (fsynced) for the next start.
   */
  async close(timeoutMs: number): Promise<void> {
    this.seal();
    this.sealSome(Number.POSITIVE_INFINITY);
    this.closed = true;
    clearInterval(this.timer);
    const deadline = Date.now() + timeoutMs;
    while (
      (this.queue.length > 0 || (this.sink && !this.spool.isEmpty)) &&
      this.sink &&
      Date.now() < deadline
    ) {
      this.pump();
      await new Promise((r) => setTimeout(r, 20));
    }
    while (this.pumping && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.spillQueue();
    this.spool.close();
  }
}

/** Memory an envelope in the queue holds: its whole buffer, which may be larger than the envelope. */
function heldBytes(s: SealedBytes): number {
  return s.json.buffer.byteLength;
}

/**
 * One envelope's JSON written as UTF-8 into a buffer of fixed capacity:
 * `{"v":1,"relay_id":…,"id":…,"events":[<event>,<event>…]}`.
 */
export class EnvelopeBuilder {
  private readonly buf: Buffer;
  private off: number;
  private count = 0;

  /** Events written so far. */
  get events(): number {
    return this.count;
  }

  constructor(
    readonly id: string,
    head: string,
    capacity: number,
    private readonly pool?: BufferPool,
  ) {
    // Shared memory, so handing a full envelope to the NATS thread (nats-link.ts) is not a copy:
    // postMessage copies an ordinary buffer into the message and out again (145–530 µs of this
    // thread's CPU per 440 KB envelope, micro-benchmark) and shares this one. Nothing writes to
    // it once finish() has run, until JetStream has the envelope and the buffer is back in the
    // pool. Its own allocation (not Node's pool for small sizes): the queue counts this buffer's
    // size. Pooled, because a fresh one cost ~1 µs per event in page faults and zeroing.
    this.buf = Buffer.from(pool ? pool.take(capacity) : new SharedArrayBuffer(capacity));
    this.off = this.buf.write(head, 0, 'utf8');
  }

  /**
   * Add the event `stamps` + `fields` (an object's JSON whose opening brace is replaced by a comma).
   * False, and nothing written, when it would not fit with the closing `]}`.
   */
  tryAppend(stamps: string, fields: string): boolean {
    const sep = this.count > 0 ? 1 : 0;
    // A UTF-16 code unit is at most 3 bytes of UTF-8; count exactly only near the end.
    let need = sep + 3 * (stamps.length + fields.length) + 2;
    if (this.off + need > this.buf.length) {
      need = sep + Buffer.byteLength(stamps) + Buffer.byteLength(fields) + 2;
      if (this.off + need > this.buf.length) return false;
    }
    if (sep) this.buf[this.off++] = 0x2c; // ,
    this.off += this.buf.write(stamps, this.off, 'utf8');
    if (fields.length > 2) {
      const start = this.off;
      this.off += this.buf.write(fields, start, 'utf8');
      this.buf[start] = 0x2c; // the fields' opening brace becomes the comma after the stamps
    } else this.buf[this.off++] = 0x7d; // }
    this.count++;
    return true;
  }

  /**
   * Close the envelope. A small one (sealed by age) is copied out, so a queue of them does not hold
   * maxEnvelopeBytes of memory each.
   */
  finish(): SealedBytes {
    this.buf[this.off++] = 0x5d; // ]
    this.buf[this.off++] = 0x7d; // }
    const used = this.buf.subarray(0, this.off);
    if (this.off >= this.buf.length / 2) return { id: this.id, json: used, events: this.count };
    const copy = new Uint8Array(used);
    this.pool?.give(this.buf.buffer);
    return { id: this.id, json: copy, events: this.count };
  }
}

/**
 * Shared buffers of one size (EVENT_ENVELOPE_MAX_BYTES) for envelopes, kept for reuse once an
 * envelope is published. A new SharedArrayBuffer is memory the kernel must fault in and zero:
 * writing 1000 events into a fresh 512 KiB one cost 0.37–1.5 µs per event in a micro-benchmark,
 * into a reused one 0.07. Holds at most `max` (2 MiB at the default size); other sizes are not kept.
 */
export class BufferPool {
  private readonly free: SharedArrayBuffer[] = [];

  constructor(
    readonly size: number,
    private readonly max = 4,
  ) {}

  /** Buffers waiting to be reused. */
  get available(): number {
    return this.free.length;
  }

  take(capacity: number): SharedArrayBuffer {
    return (capacity === this.size && this.free.pop()) || new SharedArrayBuffer(capacity);
  }

  /** Give back a buffer that nothing will read or write any more. */
  give(buffer: ArrayBufferLike): void {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength !== this.size) return;
    if (this.free.length < this.max && !this.free.includes(buffer)) this.free.push(buffer);
  }
}
