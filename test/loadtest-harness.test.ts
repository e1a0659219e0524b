import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  allowedCpus,
  expectPinned,
  meanCi95,
  parseCpuList,
  pinProcess,
  splitCpus,
} from '../loadtest/harness.ts';

describe('meanCi95', () => {
  it('is mean ± t·s/√n', () => {
    // mean 2, sample variance (1 + 0 + 0 + 1) / 3, n 4: t(3) = 3.182, half-width 3.182 · sd / √4.
    const [lo, hi] = meanCi95([1, 2, 2, 3]) ?? [Number.NaN, Number.NaN];
    const sd = Math.sqrt(2 / 3);
    expect(lo).toBeCloseTo(2 - (3.182 * sd) / 2, 6);
    expect(hi).toBeCloseTo(2 + (3.182 * sd) / 2, 6);
  });

  it('is a point for identical samples and undefined for fewer than two', () => {
    expect(meanCi95([0.5, 0.5, 0.5])).toEqual([0.5, 0.5]);
    expect(meanCi95([0.9])).toBeUndefined();
    expect(meanCi95([])).toBeUndefined();
  });

  it('uses t = 2.0 beyond 30 degrees of freedom, and narrows as samples grow', () => {
    const alternating = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? 1 : -1));
    const [lo40, hi40] = meanCi95(alternating(40))!;
    const sd40 = Math.sqrt(40 / 39);
    expect(hi40 - lo40).toBeCloseTo((2 * 2.0 * sd40) / Math.sqrt(40), 6);
    const width = (n: number) => {
      const [lo, hi] = meanCi95(alternating(n))!;
      return hi - lo;
    };
    expect(width(8)).toBeGreaterThan(width(16));
  });
});

describe('CPU lists and --pipeline-cpu', () => {
  it('reads Linux CPU lists', () => {
    expect(parseCpuList('0-1')).toEqual([0, 1]);
    expect(parseCpuList('3,0-1,6-7\n')).toEqual([0, 1, 3, 6, 7]);
    expect(parseCpuList('5')).toEqual([5]);
    expect(() => parseCpuList('0-')).toThrow('not a CPU list');
    expect(() => parseCpuList('a')).toThrow('not a CPU list');
  });

  it('gives the pipeline one CPU and the tunnel the rest, or a clear error', () => {
    expect(splitCpus('1', [0, 1])).toEqual({ pipeline: 1, tunnel: [0] });
    expect(splitCpus('0', [0, 2, 3])).toEqual({ pipeline: 0, tunnel: [2, 3] });
    expect(() => splitCpus('2', [0, 1])).toThrow(
      '--pipeline-cpu must be one of the CPUs this process may use (0, 1), not "2"',
    );
    expect(() => splitCpus('-1', [0, 1])).toThrow('--pipeline-cpu must be one of');
    expect(() => splitCpus('0.5', [0, 1])).toThrow('--pipeline-cpu must be one of');
    expect(() => splitCpus('0', [0])).toThrow('needs two CPUs or more');
  });

  it('pins every thread of a real process, and notices a thread that is not pinned', async () => {
    const cpus = allowedCpus();
    expect(cpus.length).toBeGreaterThan(0);
    // A node process already running its helper threads (V8's, libuv's): all of them must move,
    // not only the main thread (threads started later would inherit it; these do not).
    const child = spawn(process.execPath, ['-e', "console.log('ready'); setInterval(() => {}, 1000)"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await once(child.stdout!, 'data');
      const pid = child.pid!;
      expect(readdirSync(`/proc/${pid}/task`).length).toBeGreaterThan(1);
      const one = [cpus[cpus.length - 1]!];
      if (cpus.length > 1)
        expect(() => expectPinned('child', pid, one)).toThrow(`may run on CPUs ${cpus.join(',')}`);
      pinProcess(pid, one);
      expectPinned('child', pid, one);
      expect(allowedCpus(`/proc/${pid}`)).toEqual(one);
    } finally {
      child.kill();
    }
  });
});
