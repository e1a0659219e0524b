import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  decodeFrames,
  encodeFrame,
  encodeFrames,
  encodeWindow,
  encodeWsClose,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameDecoder,
  FrameError,
  FrameFlag,
  FrameType,
  readWindow,
  readWsClose,
} from './frame-codec.ts';

const types = Object.values(FrameType);
const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...types),
  flags: fc.constantFrom(0, FrameFlag.Fin, FrameFlag.Binary, FrameFlag.Fin | FrameFlag.Binary),
  streamId: fc.nat({ max: 0xffff_ffff }),
  payload: fc.uint8Array({ maxLength: 300 }),
});

const norm = (fs: Frame[]) => fs.map((f) => ({ ...f, payload: Array.from(f.payload) }));

describe('frame codec', () => {
  it('round-trips one frame', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const r = decodeFrames(encodeFrame(f.type, f.streamId, f.payload, f.flags));
        expect(r.ok).toBe(true);
        if (r.ok) expect(norm(r.frames)).toEqual(norm([f]));
      }),
    );
  });

  it('round-trips several frames concatenated in one message', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), (frames) => {
        const r = decodeFrames(encodeFrames(frames));
        expect(r.ok && norm(r.frames)).toEqual(norm(frames));
      }),
    );
  });

  it('decodes a stream split at every byte and at random points', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (frames, cuts) => {
          const bytes = encodeFrames(frames);
          // Byte by byte.
          const d1 = new FrameDecoder();
          const out1: Frame[] = [];
          for (let i = 0; i < bytes.length; i++) {
            const r = d1.push(bytes.subarray(i, i + 1));
            expect(r.ok).toBe(true);
            if (r.ok) out1.push(...r.frames);
          }
          expect(d1.end()).toBeUndefined();
          expect(norm(out1)).toEqual(norm(frames));
          // Random cut points.
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const d2 = new FrameDecoder();
          const out2: Frame[] = [];
          let prev = 0;
          for (const p of [...points, bytes.length]) {
            const r = d2.push(bytes.subarray(prev, p));
            if (r.ok) out2.push(...r.frames);
            prev = p;
          }
          expect(norm(out2)).toEqual(norm(frames));
        },
      ),
    );
  });

  it.each([
    ['unknown type', [0, 0, 0, 0, 0, 1, 0, 0, 0, 0], 'FRAME_UNKNOWN_TYPE'],
    ['type above range', [99, 0, 0, 0, 0, 1, 0, 0, 0, 0], 'FRAME_UNKNOWN_TYPE'],
    ['unknown flags', [3, 0x80, 0, 0, 0, 1, 0, 0, 0, 0], 'FRAME_BAD_FLAGS'],
    ['oversized length', [3, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff], 'FRAME_TOO_LARGE'],
    ['short header', [3, 0, 0], 'FRAME_TRUNCATED'],
    ['short payload', [3, 0, 0, 0, 0, 1, 0, 0, 0, 5, 1, 2], 'FRAME_TRUNCATED'],
  ])('rejects %s with a typed error', (_name, bytes, code) => {
    const r = decodeFrames(Uint8Array.from(bytes));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(FrameError);
      expect(r.error.code).toBe(code);
    }
  });

  it('enforces the payload limit at exactly the boundary', () => {
    const okFrame = encodeFrame(FrameType.Data, 1, new Uint8Array(64));
    expect(decodeFrames(okFrame, 64).ok).toBe(true);
    const r = decodeFrames(okFrame, 63);
    expect(!r.ok && r.error.code).toBe('FRAME_TOO_LARGE');
  });

  it('reports input cut inside a frame at end of stream', () => {
    const d = new FrameDecoder();
    d.push(encodeFrame(FrameType.Data, 7, new Uint8Array(10)).subarray(0, FRAME_HEADER_BYTES + 3));
    expect(d.bufferedBytes).toBe(FRAME_HEADER_BYTES + 3);
    expect(d.end()?.code).toBe('FRAME_TRUNCATED');
  });

  it('stays failed after an error', () => {
    const d = new FrameDecoder();
    expect(d.push(Uint8Array.from([42, 0, 0, 0, 0, 0, 0, 0, 0, 0])).ok).toBe(false);
    expect(d.push(encodeFrame(FrameType.Data, 1)).ok).toBe(false);
  });

  it('round-trips window and ws-close payloads', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffff_ffff }),
        fc.integer({ min: 1000, max: 4999 }),
        fc.string({ maxLength: 40 }),
        (n, code, reason) => {
          const w = decodeFrames(encodeWindow(3, n));
          expect(w.ok && readWindow(w.frames[0]!.payload)).toBe(n);
          const c = decodeFrames(encodeWsClose(3, code, reason));
          expect(c.ok && readWsClose(c.frames[0]!.payload)).toEqual({ code, reason });
        },
      ),
    );
    expect(readWindow(new Uint8Array(3))).toBeUndefined();
    expect(readWsClose(new Uint8Array(0))).toEqual({ code: 1005, reason: '' });
  });

  it('fuzz: 100,000 random inputs never throw and either decode or give a typed error', () => {
    let typedErrors = 0;
    let decoded = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 64 }), (bytes, cut) => {
        const r = decodeFrames(bytes, 1024);
        if (r.ok) decoded++;
        else {
          expect(r.error).toBeInstanceOf(FrameError);
          typedErrors++;
        }
        const d = new FrameDecoder(1024);
        const a = d.push(bytes.subarray(0, cut));
        const b = d.push(bytes.subarray(cut));
        // Streaming and whole-message decoding agree on validity.
        const streamed = a.ok && b.ok && d.end() === undefined;
        expect(streamed).toBe(r.ok);
      }),
      { numRuns: 100_000 },
    );
    expect(typedErrors + decoded).toBe(100_000);
    expect(typedErrors).toBeGreaterThan(0);
    expect(DEFAULT_MAX_PAYLOAD_BYTES).toBeGreaterThan(1024);
  });
});
