import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { type Envelope, envelopeSchema, eventSchema } from '@wingman/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { requestCompletedInput } from '../../../test/fixtures/events.ts';
import { testPublisher } from '../../../test/helpers/publisher.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { BufferPool, EnvelopeBuilder, fromSpoolRecord, toSpoolRecord } from './publisher.ts';
import { Spool } from './spool.ts';

/**
 * Every envelope in `spool`, oldest first, read back and acknowledged: its spool record and its
 * JSON parsed by the shared schema. A record's event count must match its envelope's.
 */
function drainEnvelopes(spool: Spool): { json: string; id: string; envelope: Envelope }[] {
  const out: { json: string; id: string; envelope: Envelope }[] = [];
  for (let r = spool.peek(); r !== undefined; r = spool.peek()) {
    const sealed = fromSpoolRecord(r);
    const envelope = envelopeSchema.parse(JSON.parse(sealed.json));
    expect(sealed.events).toBe(envelope.events.length);
    out.push({ json: sealed.json, id: sealed.id, envelope });
    spool.ack();
  }
  return out;
}

const big = (i: number) => ({
  type: 'auth.failed' as const,
  session_id: '',
  client_ip: '203.0.113.1',
  reason: `${i}:${'x'.repeat(100)}`,
});

/** Without NATS (no sink set), sealed envelopes go to the spool, where the test reads them back. */
describe('EventPublisher without NATS', () => {
  it('stamps valid events, seals by count, splits envelopes above the byte limit, and spools in order', async () => {
    const spool = new Spool(tempDir('wingman-pub-'), 1024 * 1024);
    const { pub } = testPublisher(spool, { maxEvents: 10, maxEnvelopeBytes: 1000 });
    const before = Date.now();
    for (let i = 0; i < 25; i++) pub.emit(big(i));
    const after = Date.now();
    await pub.close(100);
    const envelopes: Envelope[] = [];
    for (const { json, id, envelope } of drainEnvelopes(spool)) {
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(1000);
      expect(id).toBe(envelope.id);
      envelopes.push(envelope);
    }
    const events = envelopes.flatMap((e) => e.events).map((e) => eventSchema.parse(e));
    expect(events.map((e) => (e as { reason: string }).reason.split(':')[0])).toEqual(
      Array.from({ length: 25 }, (_, i) => String(i)),
    );
    expect(new Set(envelopes.map((e) => e.id)).size).toBe(envelopes.length);
    expect(envelopes.length).toBeGreaterThan(3);
    expect(events.every((e) => e.relay_id === 'relay-t' && e.v === 1)).toBe(true);
    // Stamped per envelope, but with each event's own emit time; ids sort in emit order.
    expect(events.every((e) => e.ts >= before && e.ts <= after)).toBe(true);
    const ids = events.map((e) => e.event_id);
    expect([...ids].sort()).toEqual(ids);
  });

  it('writes any text (multi-byte, lone surrogates) as valid JSON and keeps every envelope within the byte limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        // 1- to 4-byte characters, a lone surrogate and a quote (escaped), and any code point.
        fc.array(
          fc.oneof(
            fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', '\ud800', '"'), maxLength: 200 }),
            fc.string({ unit: 'binary', maxLength: 200 }),
          ),
          { minLength: 1, maxLength: 30 },
        ),
        fc.integer({ min: 600, max: 4000 }),
        async (agents, limit) => {
          const spool = new Spool(tempDir('wingman-pub-'), 1 << 20);
          const { pub } = testPublisher(spool, { maxEnvelopeBytes: limit }, 'relay-ü');
          // An event of ~1.4 kB: bigger than some limits, and then it still goes, alone in its envelope.
          const sent = [...agents, '😀'.repeat(256)];
          for (const user_agent of sent) pub.emit(requestCompletedInput({ user_agent }));
          await pub.close(100);
          const received: string[] = [];
          for (const { json, envelope } of drainEnvelopes(spool)) {
            // Only an event that alone exceeds the limit makes an envelope bigger than it.
            if (Buffer.byteLength(json) > limit) expect(envelope.events.length).toBe(1);
            for (const e of envelope.events) {
              const event = eventSchema.parse(e);
              expect(event.relay_id).toBe('relay-ü');
              received.push((event as { user_agent: string }).user_agent);
            }
          }
          // JSON.stringify escapes lone surrogates, so each string comes back exactly as emitted.
          expect(received).toEqual(sent);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('seals a full batch a slice per turn of the event loop, in order; a backlog past its bound is sealed at once', async () => {
    const spool = new Spool(tempDir('wingman-pub-'), 1 << 24);
    // ~8 events per envelope, so envelopes reach the spool while a batch is still being sealed.
    const { pub } = testPublisher(spool, { maxEvents: 1000, maxEnvelopeBytes: 2000, maxAgeMs: 60_000 });
    const turn = () => new Promise((r) => setImmediate(r));
    for (let i = 0; i < 1000; i++) pub.emit(big(i));
    // The batch is full and closed, but emit() did not write it: that waits for the loop.
    expect(spool.bytes).toBe(0);
    await turn();
    const afterOneTurn = spool.bytes;
    for (let i = 0; i < 20; i++) await turn();
    const wholeBatch = spool.bytes;
    // One turn wrote one slice (128 of the 1000 events), and later turns the rest.
    expect(afterOneTurn).toBeGreaterThan(0);
    expect(afterOneTurn).toBeLessThan(wholeBatch / 4);
    // Five batches with no turn in between: past four waiting, all are sealed in emit() itself.
    for (let i = 1000; i < 6000; i++) pub.emit(big(i));
    expect(spool.bytes).toBeGreaterThan(wholeBatch * 4);
    await pub.close(100);
    const reasons = drainEnvelopes(spool).flatMap(({ envelope }) =>
      envelope.events.map((e) => (eventSchema.parse(e) as { reason: string }).reason.split(':')[0]),
    );
    expect(reasons).toEqual(Array.from({ length: 6000 }, (_, i) => String(i)));
  });

  it('counts events dropped when the spool is full', async () => {
    const spool = new Spool(tempDir('wingman-pub-'), 600);
    const { pub, c } = testPublisher(spool, { maxEvents: 2 });
    for (let i = 0; i < 20; i++) pub.emit(big(i));
    await pub.close(100);
    expect(c.dropped).toBeGreaterThan(0);
    const kept = drainEnvelopes(spool).reduce((n, { envelope }) => n + envelope.events.length, 0);
    expect(kept + c.dropped).toBe(20);
  });

  it('a disk that refuses the spool costs events, counted, never an exception where they were emitted', async () => {
    const d = tempDir('wingman-pub-');
    const spool = new Spool(d, 1 << 20);
    // The spool's first segment is /dev/full: every write fails with ENOSPC.
    symlinkSync('/dev/full', join(d, '0000000001.seg'));
    const { pub, c } = testPublisher(spool, { maxEvents: 2 });
    for (let i = 0; i < 10; i++) expect(() => pub.emit(big(i))).not.toThrow();
    await pub.close(100);
    expect(c.dropped).toBe(10);
    expect(spool.bytes).toBe(0);
  });
});

describe('EnvelopeBuilder', () => {
  it('hands a small envelope over in a buffer of its own size, and a full one in the shared buffer it was written in', () => {
    const small = new EnvelopeBuilder('e-1', '{"events":[', 64 * 1024);
    small.tryAppend('{"v":1', '{"type":"x"}');
    const a = small.finish().json as Uint8Array;
    expect(Buffer.from(a).toString()).toBe('{"events":[{"v":1,"type":"x"}]}');
    expect(a.buffer.byteLength).toBe(a.byteLength);

    const full = new EnvelopeBuilder('e-2', '{"events":[', 64);
    while (full.tryAppend('{"v":1', '{"type":"x"}'));
    const b = full.finish().json as Uint8Array;
    expect(JSON.parse(Buffer.from(b).toString()).events.length).toBe(2);
    expect(b.buffer.byteLength).toBe(64);
    // Shared memory: posted to the NATS thread (nats-link.ts) without a copy.
    expect(b.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(a.buffer).not.toBeInstanceOf(SharedArrayBuffer);
  });
});

describe('BufferPool', () => {
  it('gives back buffers of its size, at most `max`, each once; a small envelope returns its buffer at finish', () => {
    const pool = new BufferPool(64, 2);
    const a = pool.take(64);
    const b = pool.take(64);
    expect(a).not.toBe(b);
    pool.give(a);
    pool.give(a);
    expect(pool.available).toBe(1);
    pool.give(new SharedArrayBuffer(128)); // another size
    pool.give(new ArrayBuffer(64)); // not shared: a copied-out envelope
    expect(pool.available).toBe(1);
    pool.give(b);
    pool.give(new SharedArrayBuffer(64));
    expect(pool.available).toBe(2);
    // The same buffers back (identity: two zeroed buffers of one size are deep-equal anyway).
    const back = [pool.take(64), pool.take(64)];
    expect(back.includes(a) && back.includes(b)).toBe(true);
    expect(pool.available).toBe(0);
    expect(pool.take(200).byteLength).toBe(200);

    // A small envelope is copied out at finish(), so its buffer is free at once; a full one's is not.
    const small = new EnvelopeBuilder('e-1', '{"events":[', 64, pool);
    small.tryAppend('{"v":1', '{"type":"x"}');
    small.finish();
    expect(pool.available).toBe(1);
    const full = new EnvelopeBuilder('e-2', '{"events":[', 64, pool);
    expect(pool.available).toBe(0);
    while (full.tryAppend('{"v":1', '{"type":"x"}'));
    expect(full.finish().json.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(pool.available).toBe(0);
  });
});

describe('spool records', () => {
  it('round-trip any id (spaces included) and still read a bare envelope written by an older relay', () => {
    fc.assert(
      fc.property(fc.string(), fc.nat(), fc.json(), (id, events, json) => {
        // As written to disk (the envelope as bytes) and read back as text.
        const written = toSpoolRecord({ id, events, json: Buffer.from(json) });
        const line = written.map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString())).join('');
        expect(fromSpoolRecord(line)).toEqual({ id, events, json });
      }),
    );
    const bare = JSON.stringify({ v: 1, relay_id: 'r', id: 'r-1-2', events: [{}, {}] });
    expect(fromSpoolRecord(bare)).toEqual({ id: 'r-1-2', events: 2, json: bare });
  });
});
