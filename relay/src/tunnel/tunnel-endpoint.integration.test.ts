import { encodeFrame, FrameType, helloSchema, PROTOCOL_VERSION, TunnelCloseCode } from '@wingman/shared';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { request } from '../../../test/helpers/http.ts';
import {
  type AppProc,
  type ClientProc,
  type RelayProc,
  startClient,
  startLocalApp,
  startRelay,
  TEST_TOKEN,
} from '../../../test/helpers/processes.ts';

/** A hand-driven tunnel connection, to send what a real client never would. */
async function rawTunnel(relay: RelayProc, hello: Record<string, unknown> | string) {
  const ws = new WebSocket(`ws://127.0.0.1:${relay.port}/v1/connect`);
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const firstText = new Promise<Record<string, unknown>>((resolve) =>
    ws.once('message', (d: Buffer, isBinary) => !isBinary && resolve(JSON.parse(d.toString()))),
  );
  ws.send(typeof hello === 'string' ? hello : JSON.stringify(hello));
  return { ws, closed, firstText };
}

const goodHello = {
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  token: TEST_TOKEN,
  localPort: 3000,
  clientVersion: 'test/1',
};

describe('tunnel endpoint', () => {
  let relay: RelayProc;
  let app: AppProc;
  let client: ClientProc;
  const extra: { stop(): Promise<void> }[] = [];

  beforeAll(async () => {
    [relay, app] = await Promise.all([startRelay({ RESUME_GRACE_MS: '100' }), startLocalApp()]);
    client = await startClient(relay, app.port);
  });
  afterEach(async () => {
    await Promise.all(extra.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await Promise.all([client?.stop(), app?.stop(), relay?.stop()]);
  });

  const stillServing = async () => {
    const r = await request(`${client.session.urls.path}echo?still=1`);
    expect(r.status).toBe(200);
  };

  it('refuses a hello without the token with a clear close code', async () => {
    const { closed } = await rawTunnel(relay, { ...goodHello, token: undefined });
    expect(await closed).toEqual({
      code: TunnelCloseCode.Unauthorized,
      reason: 'unauthorized: missing or wrong token',
    });
    const wrong = await rawTunnel(relay, { ...goodHello, token: 'not-the-token' });
    expect((await wrong.closed).code).toBe(TunnelCloseCode.Unauthorized);
  });

  it('refuses malformed hellos and unsupported protocol versions', async () => {
    const garbage = await rawTunnel(relay, '{not json');
    expect(await garbage.closed).toMatchObject({ code: TunnelCloseCode.BadHello });
    const badPort = await rawTunnel(relay, { ...goodHello, localPort: 70000 });
    const c = await badPort.closed;
    expect(c.code).toBe(TunnelCloseCode.BadHello);
    expect(c.reason).toContain('localPort');
    const v99 = await rawTunnel(relay, { ...goodHello, protocol: 99 });
    expect((await v99.closed).code).toBe(TunnelCloseCode.UnsupportedProtocol);
  });

  it('replies to a good hello with the session, URLs, resume token and limits', async () => {
    const t = await rawTunnel(relay, goodHello);
    const session = await t.firstText;
    expect(session).toMatchObject({ type: 'session', resumed: false });
    expect(session.sessionId).toMatch(/^[a-zA-Z0-9]{8,32}$/);
    expect((session.urls as { path: string }).path).toBe(`${relay.url}/session/${session.sessionId}/`);
    expect(session.limits).toMatchObject({ maxStreams: 256, streamWindowBytes: 256 * 1024 });
    t.ws.close();
    await t.closed;
  });

  it('closes only the tunnel that sends a malformed frame', async () => {
    const t = await rawTunnel(relay, goodHello);
    await t.firstText;
    t.ws.send(Buffer.from([77, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
    const c = await t.closed;
    expect(c.code).toBe(TunnelCloseCode.ProtocolError);
    expect(c.reason).toContain('FRAME_UNKNOWN_TYPE');
    await stillServing();
  });

  it('closes only the tunnel that sends a truncated frame or a frame type only the relay may send', async () => {
    const t1 = await rawTunnel(relay, goodHello);
    await t1.firstText;
    t1.ws.send(encodeFrame(FrameType.Data, 1, Buffer.alloc(100)).subarray(0, 50));
    expect((await t1.closed).reason).toContain('FRAME_TRUNCATED');
    const t2 = await rawTunnel(relay, goodHello);
    const s2 = await t2.firstText;
    // Open a stream so the frame below targets a live stream id.
    const pending = request(`${relay.url}/session/${s2.sessionId}/x`).catch(() => undefined);
    await new Promise((r) => t2.ws.once('message', r));
    t2.ws.send(encodeFrame(FrameType.RequestHead, 1, Buffer.from('{}')));
    expect((await t2.closed).code).toBe(TunnelCloseCode.ProtocolError);
    const r = await pending;
    expect(r?.status).toBe(502);
    await stillServing();
  });

  it('closes only the tunnel that sends an oversized message', async () => {
    const t = await rawTunnel(relay, goodHello);
    await t.firstText;
    t.ws.send(Buffer.alloc(4 * 1024 * 1024));
    // uWS drops a connection whose message exceeds maxPayloadLength without a close frame.
    expect((await t.closed).code).toBe(1006);
    await stillServing();
  });

  it('fuzz: anything but a hello is refused with a catalogued code; random messages after a hello close only that tunnel', async () => {
    const known = new Set<number>(Object.values(TunnelCloseCode));
    const mutatedHello = fc
      .record({
        key: fc.constantFrom(
          'type',
          'protocol',
          'token',
          'localPort',
          'clientVersion',
          'subdomain',
          'resumeToken',
        ),
        value: fc.jsonValue({ maxDepth: 2 }),
      })
      .map(({ key, value }) => JSON.stringify({ ...goodHello, [key]: value }));
    const first = fc.oneof(
      fc.constant(JSON.stringify(goodHello)),
      mutatedHello,
      fc.string({ maxLength: 200 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
    );
    const frame = fc
      .record({
        type: fc.integer({ min: 0, max: 20 }),
        flags: fc.integer({ min: 0, max: 255 }),
        stream: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        payload: fc.uint8Array({ maxLength: 300 }),
      })
      .map((f) => Buffer.from(encodeFrame(f.type as FrameType, f.stream, f.payload, f.flags)));
    const later = fc.array(
      fc.oneof(
        frame,
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
        fc.string({ maxLength: 100 }),
      ),
      { maxLength: 4 },
    );
    await fc.assert(
      fc.asyncProperty(first, later, async (hello, messages) => {
        const t = await rawTunnel(relay, hello);
        let closed: { code: number; reason: string } | undefined;
        void t.closed.then((c) => {
          closed = c;
        });
        let validHello = false;
        try {
          validHello = helloSchema.safeParse(JSON.parse(hello)).success;
        } catch {}
        if (!validHello) {
          // Anything but a hello is refused, and says why.
          const c = await Promise.race([
            t.closed,
            new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000)),
          ]);
          expect(c, `no close after the bad hello ${hello}`).toBeDefined();
        } else {
          for (const m of messages) if (t.ws.readyState === WebSocket.OPEN) t.ws.send(m);
          await new Promise((r) => setTimeout(r, 50));
        }
        if (closed) expect(known.has(closed.code), `close code ${closed.code} ${closed.reason}`).toBe(true);
        t.ws.terminate();
      }),
      { numRuns: 80 },
    );
    await stillServing();
    expect((await request(`${relay.url}/health`)).status).toBe(200);
  });

  it('honours a requested subdomain and refuses it while taken', async () => {
    const a = await startClient(relay, app.port, { args: ['--subdomain', 'myapp2024'] });
    extra.push(a);
    expect(a.session.sessionId).toBe('myapp2024');
    expect((await request(`${relay.url}/session/myapp2024/echo`)).status).toBe(200);
    const t = await rawTunnel(relay, { ...goodHello, subdomain: 'myapp2024' });
    expect((await t.closed).code).toBe(TunnelCloseCode.SubdomainTaken);
  });

  it('refuses new sessions at MAX_SESSIONS, and /ready reports capacity', async () => {
    const small = await startRelay({ MAX_SESSIONS: '2' });
    extra.push(small);
    const t1 = await rawTunnel(small, goodHello);
    await t1.firstText;
    const t2 = await rawTunnel(small, goodHello);
    await t2.firstText;
    const t3 = await rawTunnel(small, goodHello);
    expect(await t3.closed).toEqual({
      code: TunnelCloseCode.AtCapacity,
      reason: 'relay at capacity (MAX_SESSIONS)',
    });
    expect((await request(`${small.url}/ready`)).status).toBe(503);
    t1.ws.send(JSON.stringify({ type: 'close' }));
    t2.ws.send(JSON.stringify({ type: 'close' }));
    await Promise.all([t1.closed, t2.closed]);
    expect((await request(`${small.url}/ready`)).status).toBe(200);
  });

  it('wingman exits with a clear message when the relay refuses its token', async () => {
    const bad = await startClient(relay, app.port, { token: 'wrong-token-123', waitSession: false });
    const exit = await bad.exited;
    expect(exit.code).toBe(1);
    expect(bad.stderr).toContain('relay refused the tunnel (4401): unauthorized: missing or wrong token');
  });
});
