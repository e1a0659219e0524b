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

/** A request head as the relay would send it, valid or not for HTTP. */
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

/** A LocalProxy whose frames to the relay are decoded into `frames`. */
function proxyWithFrames() {
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
  return { proxy, frames };
}

async function settled(proxy: LocalProxy): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (proxy.activeStreams > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(proxy.activeStreams).toBe(0);
}

describe('LocalProxy (real local app, real undici pool)', () => {
  it('fuzz: any request head (with or without a body, or reset part-way) gets exactly one answer, never a throw or a hang', async () => {
    // How the relay goes on after the head: no body (FIN on the head), a body in a few DATA frames,
    // or a RESET part-way (the visitor went away).
    const stream = fc.record({
      head,
      after: fc.oneof(
        fc.constant({ kind: 'fin' as const }),
        fc.record({
          kind: fc.constant('body' as const),
          chunks: fc.array(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { maxLength: 3 }),
        }),
        fc.record({
          kind: fc.constant('reset' as const),
          chunks: fc.array(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { maxLength: 2 }),
        }),
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(stream, { minLength: 1, maxLength: 8 }), async (streams) => {
        const { proxy, frames } = proxyWithFrames();
        try {
          streams.forEach(({ head: h, after }, i) => {
            const id = i + 1;
            const headFlags = after.kind === 'fin' ? FrameFlag.Fin : 0;
            expect(() => {
              proxy.onFrame(FrameType.RequestHead, headFlags, id, Buffer.from(JSON.stringify(h)));
              if (after.kind === 'fin') return;
              for (const c of after.chunks) proxy.onFrame(FrameType.Data, 0, id, c);
              if (after.kind === 'body') proxy.onFrame(FrameType.Data, FrameFlag.Fin, id, new Uint8Array(0));
              else proxy.onFrame(FrameType.Reset, 0, id, Buffer.from('VISITOR_ABORTED'));
            }).not.toThrow();
          });
          await settled(proxy);
          for (let id = 1; id <= streams.length; id++) {
            // A stream the relay reset may or may not have been answered first.
            if (streams[id - 1]!.after.kind === 'reset') continue;
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

  it('fuzz: any WebSocket open from the relay gets one answer (accepted, refused or reset), never a throw', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(head, { minLength: 1, maxLength: 6 }), async (heads) => {
        const { proxy, frames } = proxyWithFrames();
        try {
          heads.forEach((h, i) => {
            expect(() =>
              proxy.onFrame(FrameType.WsOpen, 0, i + 1, Buffer.from(JSON.stringify(h))),
            ).not.toThrow();
          });
          // The test app does not speak WebSocket: every open ends refused (a response head) or reset.
          await settled(proxy);
          for (let id = 1; id <= heads.length; id++) {
            const mine = frames.filter((f) => f.streamId === id);
            const answers = mine.filter(
              (f) =>
                f.type === FrameType.WsAccept ||
                f.type === FrameType.ResponseHead ||
                f.type === FrameType.Reset,
            );
            expect(answers).toHaveLength(1);
          }
        } finally {
          proxy.close();
        }
      }),
      { numRuns: 100 },
    );
  });
});
