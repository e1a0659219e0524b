/**
 * Child process of bench-sessions: opens N tunnel sessions to a relay and
 * answers every request head on each with "200 <sessionId>". Prints one JSON
 * line when all are connected: {"connected","failed","connectMs":[...],"ids":[...]}.
 * Usage: tsx loadtest/sessions-worker.ts <relayWsUrl> <token> <sessions> <concurrency>
 */
import {
  decodeFrames,
  encodeFrames,
  FrameFlag,
  FrameType,
  jsonBytes,
  PROTOCOL_VERSION,
} from '@wingman/shared';
import WebSocket from 'ws';

const [url, token, n, conc] = process.argv.slice(2);
const total = Number(n);
const concurrency = Number(conc ?? 200);
const connectMs: number[] = [];
const ids: string[] = [];
let failed = 0;
const sockets: WebSocket[] = [];

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const started = performance.now();
    const ws = new WebSocket(url!, { perMessageDeflate: false });
    let sessionId = '';
    ws.on('open', () =>
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          token,
          localPort: 3000,
          clientVersion: 'bench/1',
        }),
      ),
    );
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) {
        sessionId = (JSON.parse(data.toString()) as { sessionId: string }).sessionId;
        connectMs.push(performance.now() - started);
        ids.push(sessionId);
        sockets.push(ws);
        resolve();
        return;
      }
      const decoded = decodeFrames(data);
      if (!decoded.ok) return;
      for (const f of decoded.frames) {
        if (f.type !== FrameType.RequestHead) continue;
        const body = Buffer.from(sessionId);
        ws.send(
          encodeFrames([
            {
              type: FrameType.ResponseHead,
              flags: 0,
              streamId: f.streamId,
              payload: jsonBytes({ status: 200, headers: [['content-length', String(body.length)]] }),
            },
            { type: FrameType.Data, flags: FrameFlag.Fin, streamId: f.streamId, payload: body },
          ]),
        );
      }
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      if (!sessionId) {
        failed++;
        resolve();
      }
    });
  });
}

let next = 0;
async function lane(): Promise<void> {
  while (next < total) {
    next++;
    await openOne();
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
process.stdout.write(`${JSON.stringify({ connected: ids.length, failed, connectMs, ids })}\n`);
process.on('SIGTERM', () => {
  for (const ws of sockets) ws.terminate();
  process.exit(0);
});
