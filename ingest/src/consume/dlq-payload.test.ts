import { headers as natsHeaders } from '@nats-io/transport-node';
import { Topology } from '@wingman/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fitPayload } from './worker.ts';

/** What nats.js will send as the headers (its own encoder, not ours). */
const encoded = (h: ReturnType<typeof natsHeaders>) =>
  (h as unknown as { encode(): Uint8Array }).encode().byteLength;

describe('fitPayload: a DLQ message always fits max_payload', () => {
  it('keeps a payload that fits, as it is and without a truncation mark', () => {
    const h = natsHeaders();
    h.set(Topology.dlqReasonHeader, 'bad envelope: not valid JSON');
    const payload = new Uint8Array(1000);
    expect(fitPayload({ reason: 'x', payload }, h, 1024 * 1024)).toBe(payload);
    expect(h.has(Topology.dlqTruncatedHeader)).toBe(false);
  });

  it('cuts any payload that does not fit, and marks its full size', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme', maxLength: 3000 }),
          fc.uint8Array({ maxLength: 5000 }).map((a) => a as Uint8Array | string),
        ),
        fc.string({ maxLength: 1000 }),
        fc.integer({ min: 2048, max: 6000 }),
        (payload, reason, maxPayload) => {
          const h = natsHeaders();
          h.set(Topology.dlqReasonHeader, reason.replace(/\s+/g, ' ') || 'r');
          const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
          const out = fitPayload({ reason, payload }, h, maxPayload);
          const outSize = typeof out === 'string' ? Buffer.byteLength(out) : out.byteLength;
          // Room left for the Nats-Msg-Id header that js.publish adds (ids are < 200 bytes).
          expect(outSize + encoded(h) + 300).toBeLessThanOrEqual(maxPayload);
          if (h.has(Topology.dlqTruncatedHeader)) {
            expect(h.get(Topology.dlqTruncatedHeader)).toBe(String(size));
            const whole = typeof payload === 'string' ? Buffer.from(payload) : payload;
            expect(Buffer.from(out as Uint8Array).equals(Buffer.from(whole.subarray(0, outSize)))).toBe(true);
          } else expect(out).toBe(payload);
        },
      ),
      { numRuns: 300 },
    );
  });
});
