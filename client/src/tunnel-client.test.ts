import { describe, expect, it } from 'vitest';
import { tunnelUrl } from './cli.ts';
import { backoffDelay } from './tunnel-client.ts';

describe('backoffDelay', () => {
  it('grows exponentially up to the cap, with jitter inside the bounds', () => {
    expect(backoffDelay(0, 250, 15_000, () => 0)).toBe(125);
    expect(backoffDelay(0, 250, 15_000, () => 1)).toBe(250);
    expect(backoffDelay(3, 250, 15_000, () => 1)).toBe(2000);
    expect(backoffDelay(30, 250, 15_000, () => 1)).toBe(15_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(5, 250, 15_000);
      expect(d).toBeGreaterThanOrEqual(125);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });
});

describe('tunnelUrl', () => {
  it.each([
    ['http://127.0.0.1:8080', 'ws://127.0.0.1:8080/v1/connect'],
    ['https://relay.example.com', 'wss://relay.example.com/v1/connect'],
    ['relay.example.com:9000', 'ws://relay.example.com:9000/v1/connect'],
    ['wss://relay.example.com/custom', 'wss://relay.example.com/custom'],
  ])('%s -> %s', (from, to) => {
    expect(tunnelUrl(from)).toBe(to);
  });
});
