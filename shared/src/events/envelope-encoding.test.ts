import { brotliCompressSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope, MAX_INFLATED_ENVELOPE_BYTES } from './envelope-encoding.ts';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('envelope encoding', () => {
  it('br round-trips any text and says so; none passes the bytes through', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (s) => {
        const br = encodeEnvelope(s, 'br');
        expect(br.contentEncoding).toBe('br');
        const back = decodeEnvelope(br.data as Uint8Array, 'br');
        expect(back.ok && text(back.json)).toBe(s);
        const plain = encodeEnvelope(s, 'none');
        expect(plain).toEqual({ data: s });
      }),
      { numRuns: 500 },
    );
  });

  it('shrinks envelope JSON many times over', () => {
    const events = Array.from({ length: 1000 }, (_, i) => ({
      v: 1,
      type: 'request.completed',
      event_id: `01JDX${String(i).padStart(21, '0')}`,
      path: '/users/:id',
      status: 200,
      duration_ms: (i * 7) % 1000,
    }));
    const json = Buffer.from(JSON.stringify({ v: 1, relay_id: 'r', id: 'x', events }));
    expect((encodeEnvelope(json, 'br').data as Uint8Array).byteLength).toBeLessThan(json.byteLength / 10);
  });

  it('names what it cannot decode instead of throwing', () => {
    const plain = new TextEncoder().encode('{"v":1}');
    for (const none of [undefined, '', 'identity'])
      expect(decodeEnvelope(plain, none)).toEqual({ ok: true, json: plain });
    expect(decodeEnvelope(plain, 'gzip')).toEqual({ ok: false, error: 'unknown Content-Encoding "gzip"' });
    const bad = decodeEnvelope(plain, 'br');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^cannot inflate \(br\): /);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        // Never a throw: inflated bytes, or the inflate error by name.
        const r = decodeEnvelope(bytes, 'br');
        if (!r.ok) expect(r.error).toMatch(/^cannot inflate \(br\): \S/);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses an envelope that would inflate past the limit (a compression bomb)', () => {
    const bomb = brotliCompressSync(Buffer.alloc(MAX_INFLATED_ENVELOPE_BYTES + 1, 0x20));
    expect(bomb.byteLength).toBeLessThan(100_000);
    expect(decodeEnvelope(bomb, 'br')).toEqual({
      ok: false,
      error: `envelope inflates past ${MAX_INFLATED_ENVELOPE_BYTES} bytes`,
    });
  });
});
