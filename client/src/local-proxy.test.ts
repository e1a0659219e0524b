import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeFrames, FrameFlag, FrameType, type SessionLimits } from '@wingman/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalProxy } from './local-proxy.ts';

const LIMITS: SessionLimits = {
  maxBodyBytes: 10 * 1024 * 1024,
  maxStreams: 256,
  sessionTimeoutMs: 0,
  resumeGraceMs: 30_000,
  streamWindowBytes: 256 * 1024,
  maxFramePayloadBytes: 64 * 1024,
  localTimeoutMs: 30_000,
};

/** A real local app on loopback that answers every request it can parse. */
let app: http.Server;
let port: number;
beforeAll(async () => {
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`${req.method} ${req.url}`));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  port = (app.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => app.close(() => r())));

describe('LocalProxy (real local app, real undici pool)', () => {
  it('fuzz: any request head from the relay gets exactly one answer (response or reset), never a throw or a hang', async () => {
    const head = fc.record({
      method: fc.oneof(
        fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'),
        fc.string({ minLength: 1, maxLength: 32 }),
      ),
      path: fc.oneof(
        fc.webPath().map((p) => p || '/'),
        fc.string({ minLength: 1, maxLength: 64 }),
      ),
      headers: fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ maxLength: 40 })), {
        maxLength: 5,
      }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(head, { minLength: 1, maxLength: 8 }), async (heads) => {
        const frames: { type: number; streamId: number; flags: number }[] = [];
        const proxy = new LocalProxy(
          '127.0.0.1',
          port,
          (bytes) => {
            const d = decodeFrames(bytes);
            if (!d.ok) throw d.error;
            for (const f of d.frames) frames.push({ type: f.type, streamId: f.streamId, flags: f.flags });
          },
          () => LIMITS,
          () => {},
          false,
        );
        try {
          heads.forEach((h, i) => {
            expect(() =>
              proxy.onFrame(FrameType.RequestHead, FrameFlag.Fin, i + 1, Buffer.from(JSON.stringify(h))),
            ).not.toThrow();
          });
          const deadline = Date.now() + 10_000;
          while (proxy.activeStreams > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
          expect(proxy.activeStreams).toBe(0);
          for (let id = 1; id <= heads.length; id++) {
            const mine = frames.filter((f) => f.streamId === id);
            const reset = mine.filter((f) => f.type === FrameType.Reset).length;
            const responded = mine.filter((f) => f.type === FrameType.ResponseHead).length;
            const ended = mine.filter((f) => f.type === FrameType.Data && f.flags & FrameFlag.Fin).length;
            // One answer: a response that ends, or a reset.
            expect(reset + responded).toBe(1);
            if (responded) expect(ended).toBe(1);
          }
        } finally {
          proxy.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
