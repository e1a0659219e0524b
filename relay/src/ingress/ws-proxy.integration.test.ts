import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type AppProc,
  type ClientProc,
  type RelayProc,
  startClient,
  startLocalApp,
  startRelay,
} from '../../../test/helpers/processes.ts';

function open(
  url: string,
  protocols: string[] = [],
  headers: Record<string, string> = {},
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected ${res.statusCode}`)));
  });
}

const nextMessage = (ws: WebSocket) =>
  new Promise<{ data: Buffer; isBinary: boolean }>((resolve) =>
    ws.once('message', (data: Buffer, isBinary) => resolve({ data, isBinary })),
  );

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );

describe('WebSocket passthrough: visitor <-> relay <-> client <-> local app', () => {
  let relay: RelayProc;
  let app: AppProc;
  let client: ClientProc;
  let wsBase: string;

  beforeAll(async () => {
    [relay, app] = await Promise.all([startRelay(), startLocalApp()]);
    client = await startClient(relay, app.port);
    wsBase = client.session.urls.path.replace(/^http/, 'ws').replace(/\/$/, '');
  });
  afterAll(async () => {
    await Promise.all([client?.stop(), app?.stop(), relay?.stop()]);
  });

  it('echoes text and binary messages and negotiates the subprotocol', async () => {
    const ws = await open(`${wsBase}/chat?room=1`, ['v2.chat', 'v1.chat']);
    expect(ws.protocol).toBe('v2.chat');
    ws.send('hello \u00e9');
    const text = await nextMessage(ws);
    expect(text).toEqual({ data: Buffer.from('hello \u00e9'), isBinary: false });
    const bin = Buffer.from([0, 1, 2, 255, 254, 0]);
    ws.send(bin);
    const echoed = await nextMessage(ws);
    expect(echoed.isBinary).toBe(true);
    expect(Buffer.compare(echoed.data, bin)).toBe(0);
    // Many messages in a row keep their order.
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      ws.on('message', (d: Buffer) => {
        got.push(d.toString());
        if (got.length === 500) resolve();
      }),
    );
    for (let i = 0; i < 500; i++) ws.send(`m${i}`);
    await all;
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => `m${i}`));
    ws.close(1000);
    await closed(ws);
  });

  it('passes the local app close code to the visitor', async () => {
    const ws = await open(`${wsBase}/x`);
    const c = closed(ws);
    ws.send('close:4321');
    expect(await c).toEqual({ code: 4321, reason: 'requested' });
  });

  it('passes the visitor close code to the local app', async () => {
    const ws = await open(`${wsBase}/visitor-close`);
    ws.send('ping');
    await nextMessage(ws);
    ws.close(4002, 'visitor leaving');
    await closed(ws);
    // The client logs each WebSocket with the code the local app saw.
    const line = await client.waitFor((l) => l.includes('"path":"/visitor-close"'));
    expect(JSON.parse(line)).toMatchObject({ method: 'WS', status: 4002, websocket: true });
  });

  it('works on host-based URLs', async () => {
    const ws = await open(`ws://127.0.0.1:${relay.port}/h`, [], {
      host: new URL(client.session.urls.host).host,
    });
    ws.send('via host');
    expect((await nextMessage(ws)).data.toString()).toBe('via host');
    ws.close();
  });

  it('answers upgrades for unknown sessions with 404', async () => {
    await expect(open(`ws://127.0.0.1:${relay.port}/session/nosuchsession1/`)).rejects.toThrow(
      'unexpected 404',
    );
  });
});
