import { describe, expect, it } from 'vitest';
import { meanCi95 } from '../loadtest/harness.ts';

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
