import { describe, expect, it } from 'vitest';
import { BATCH_LIMIT_BYTES, FrameBatcher } from './frame-batcher.ts';

describe('FrameBatcher', () => {
  it('coalesces frames pushed in one tick into one message, in order', async () => {
    const out: Uint8Array[] = [];
    const b = new FrameBatcher((m) => out.push(m));
    b.push(Uint8Array.from([1]));
    b.push(Uint8Array.from([2, 3]));
    expect(out).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(out.map((m) => [...m])).toEqual([[1, 2, 3]]);
  });

  it('sends large frames at once, after what was pending', () => {
    const out: Uint8Array[] = [];
    const b = new FrameBatcher((m) => out.push(m));
    b.push(Uint8Array.from([9]));
    b.push(new Uint8Array(BATCH_LIMIT_BYTES));
    expect(out.map((m) => m.byteLength)).toEqual([1, BATCH_LIMIT_BYTES]);
  });
});
