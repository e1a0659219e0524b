import { PassThrough } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LineWriter } from './line-writer.ts';

const notShown = (n: number) => `not shown: ${n}`;

/** Everything written to `stream` so far and from now on, as lines. */
function collect(stream: PassThrough): string[] {
  const lines: string[] = [];
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  return lines;
}

/** The request numbers shown, and the counts of those not shown, in `lines`. */
function tally(lines: string[]) {
  const shown = lines.filter((l) => l.startsWith('GET /')).map((l) => Number(l.slice(5)));
  const notShownCounts = lines.filter((l) => l.startsWith('not shown: ')).map((l) => Number(l.slice(11)));
  return { shown, dropped: notShownCounts.reduce((a, b) => a + b, 0), notShownCounts };
}

describe('LineWriter', () => {
  it('batches a tick of lines into one write, in order', async () => {
    const stream = new PassThrough();
    const lines = collect(stream);
    const writes: number[] = [];
    stream.on('data', (c: Buffer) => writes.push(c.length));
    const out = new LineWriter(stream, notShown);
    out.line('session');
    for (let i = 0; i < 5; i++) out.request(`GET /${i}`);
    out.line('disconnected');
    await tick();
    await tick();
    expect(lines).toEqual(['session', 'GET /0', 'GET /1', 'GET /2', 'GET /3', 'GET /4', 'disconnected']);
    expect(writes).toHaveLength(1);
  });

  it('drops request lines while the output is not read, keeps the others, and counts what it dropped', async () => {
    // A real stream whose reader has stopped: what is written waits in `writableLength`.
    const stream = new PassThrough({ highWaterMark: 1024 });
    const max = 8 * 1024;
    const out = new LineWriter(stream, notShown, max);
    const total = 5000;
    for (let i = 0; i < total; i++) {
      out.request(`GET /${i}`);
      if (i % 1000 === 999) out.line(`status ${i}`);
      if (i % 50 === 49) await tick(); // requests arrive over many ticks, as from the network
    }
    await tick();
    // Bounded: at most the limit and one tick's lines (50 short lines) beyond it.
    expect(stream.writableLength).toBeLessThanOrEqual(max + 50 * 12 + 16);
    // The reader comes back: everything queued is read, and the count follows by itself.
    const lines = collect(stream);
    await new Promise<void>((r) => {
      const check = () => (lines.some((l) => l.startsWith('not shown: ')) ? r() : setTimeout(check, 5));
      check();
    });
    const { shown, dropped, notShownCounts } = tally(lines);
    expect(dropped).toBeGreaterThan(0);
    expect(notShownCounts).toHaveLength(1);
    expect(shown.length + dropped).toBe(total);
    // The lines shown are in order, and every other line was written.
    expect(shown).toEqual([...shown].sort((a, b) => a - b));
    expect(lines.filter((l) => l.startsWith('status '))).toEqual(
      [999, 1999, 2999, 3999, 4999].map((i) => `status ${i}`),
    );
    // Caught up: request lines are shown again.
    out.request('GET /after');
    await tick();
    await tick();
    expect(lines.at(-1)).toBe('GET /after');
  });

  it('says at exit how many were not shown, even while the output is still not read', async () => {
    const stream = new PassThrough({ highWaterMark: 1024 });
    const out = new LineWriter(stream, notShown, 2048);
    for (let i = 0; i < 2000; i++) {
      out.request(`GET /${i}`);
      if (i % 20 === 19) await tick();
    }
    out.line('closed');
    out.flush(true);
    const lines = collect(stream);
    await tick();
    const { shown, dropped } = tally(lines);
    expect(dropped).toBeGreaterThan(0);
    expect(shown.length + dropped).toBe(2000);
    expect(lines.slice(-2)).toEqual(['closed', `not shown: ${dropped}`]);
  });
});
