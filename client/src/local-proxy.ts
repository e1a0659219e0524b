import { PassThrough } from 'node:stream';
import {
  encodeFrame,
  encodeReset,
  encodeWindow,
  encodeWsClose,
  FrameFlag,
  FrameType,
  HOP_BY_HOP_HEADERS,
  jsonBytes,
  parseJson,
  type RequestHead,
  type ResponseHead,
  readWindow,
  readWsClose,
  requestHeadSchema,
  type SessionLimits,
} from '@wingman/shared';
import { type Dispatcher, Pool } from 'undici';
import WebSocket from 'ws';

/** One completed request, for the console log. */
export interface RequestLog {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  bytesOut: number;
  websocket: boolean;
}

interface HttpStream {
  kind: 'http';
  id: number;
  /** The request body still being streamed to the local app; undefined when there is none (or it ended). */
  body: PassThrough | undefined;
  /** undici's handle on the request (pause, resume, abort); set once the request is on a connection. */
  controller: Dispatcher.DispatchController | undefined;
  /** The local app's response head has been sent to the relay. */
  responded: boolean;
  head: RequestHead;
  startedAt: number;
  /** Response bytes the relay will still accept. */
  credit: number;
  /** Request-body credit owed back to the relay. */
  owed: number;
  paused: boolean;
  status: number;
  bytesOut: number;
  done: boolean;
}

interface WsStream {
  kind: 'ws';
  id: number;
  ws: WebSocket;
  head: RequestHead;
  startedAt: number;
  credit: number;
  owed: number;
  paused: boolean;
  open: boolean;
  done: boolean;
}

type Stream = HttpStream | WsStream;

const HTML_502 = (host: string, port: number, reason: string) =>
  `<!doctype html><meta charset="utf-8"><title>502 - local app unreachable</title>
<body style="font-family:system-ui;max-width:40em;margin:4em auto">
<h1>Local app unreachable</h1>
<p>The wingman tunnel is up, but nothing answered at <code>${host}:${port}</code> (${reason}).</p>
<p>Start your app on that port, then reload this page.</p></body>`;

/**
 * The client side of the tunnel's streams: turns frames from the relay into
 * requests to the local app and its answers back into frames.
 */
export class LocalProxy {
  private readonly streams = new Map<number, Stream>();
  private readonly pool: Pool;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly send: (frame: Uint8Array) => void,
    private readonly limits: () => SessionLimits,
    private readonly onComplete: (entry: RequestLog) => void,
    private readonly preserveHost: boolean,
  ) {
    // undici keeps connections to the local app alive (a new TCP connection per request costs more
    // than the proxying) and costs about a third less CPU per request than node:http
    // (docs/performance.md). Idle connections are dropped after undici's default 4 s, or sooner when
    // the app's Keep-Alive header says so, before servers' usual 5 s idle timeout closes them under
    // a request. No request timeouts: dev servers hold long polls and event streams open, and the
    // relay bounds how long a visitor waits.
    this.pool = new Pool(`http://${host.includes(':') ? `[${host}]` : host}:${port}`, {
      connections: 512,
      pipelining: 1,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  /** Handle one frame from the relay. */
  onFrame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    const stream = this.streams.get(streamId);
    switch (type) {
      case FrameType.RequestHead:
        if (!stream) this.openHttp(streamId, payload, (flags & FrameFlag.Fin) !== 0);
        return;
      case FrameType.WsOpen:
        if (!stream) this.openWs(streamId, payload);
        return;
    }
    if (!stream) return;
    switch (type) {
      case FrameType.Data:
        if (stream.kind === 'http') this.requestData(stream, payload, (flags & FrameFlag.Fin) !== 0);
        return;
      case FrameType.Window: {
        const inc = readWindow(payload) ?? 0;
        stream.credit += inc;
        if (stream.paused && stream.credit > 0) {
          stream.paused = false;
          if (stream.kind === 'http') stream.controller?.resume();
          else stream.ws.resume();
        }
        return;
      }
      case FrameType.Reset:
        this.destroy(stream);
        return;
      case FrameType.WsMessage:
        if (stream.kind === 'ws' && stream.open) {
          const len = payload.byteLength;
          stream.ws.send(payload, { binary: (flags & FrameFlag.Binary) !== 0 }, () =>
            this.oweWs(stream, len),
          );
        }
        return;
      case FrameType.WsClose:
        if (stream.kind === 'ws') {
          const { code, reason } = readWsClose(payload);
          stream.done = true;
          this.streams.delete(stream.id);
          if (code === 1005 || code === 1006 || code === 1015) stream.ws.close();
          else stream.ws.close(code, reason);
          this.logWs(stream, code);
        }
        return;
    }
  }

  private openHttp(id: number, payload: Uint8Array, fin: boolean): void {
    const parsed = parseJson(requestHeadSchema, payload);
    if (!parsed.ok) {
      this.send(encodeReset(id, 'BAD_REQUEST_HEAD'));
      return;
    }
    const head = parsed.value;
    const headers: string[] = [];
    for (const [k, v] of head.headers) {
      const name = k.toLowerCase();
      // The relay already drops hop-by-hop headers; undici refuses them (and Expect) outright.
      if (HOP_BY_HOP_HEADERS.has(name) || name === 'expect') continue;
      // Dev servers (Vite, webpack) reject unknown Host headers; the visitor's host stays in X-Forwarded-Host.
      if (name === 'host' && !this.preserveHost) headers.push(k, `${this.host}:${this.port}`);
      else headers.push(k, v);
    }
    const stream: HttpStream = {
      kind: 'http',
      id,
      body: fin ? undefined : new PassThrough(),
      controller: undefined,
      responded: false,
      head,
      startedAt: performance.now(),
      credit: this.limits().streamWindowBytes,
      owed: 0,
      paused: false,
      status: 0,
      bytesOut: 0,
      done: false,
    };
    this.streams.set(id, stream);
    // CONNECT asks for a raw tunnel, which dev servers do not offer (undici would wait for an upgrade).
    if (head.method.toUpperCase() === 'CONNECT') {
      this.refuse(stream);
      return;
    }
    try {
      this.pool.dispatch(
        { path: head.path, method: head.method, headers, body: stream.body },
        this.responseHandler(stream),
      );
    } catch {
      // undici refuses a head it cannot send (a method or header value that is not valid HTTP)
      // synchronously.
      this.refuse(stream);
    }
  }

  /** A request head the local app cannot be sent: reset, like a head that fails the schema. */
  private refuse(stream: HttpStream): void {
    stream.body?.destroy();
    this.send(encodeReset(stream.id, 'BAD_REQUEST_HEAD'));
    this.finish(stream);
  }

  /** Frames for the local app's answer: head, data (paused when the relay's window is used up), end. */
  private responseHandler(stream: HttpStream): Dispatcher.DispatchHandler {
    return {
      onRequestStart: (controller) => {
        stream.controller = controller;
        if (stream.done) controller.abort(new Error('stream reset by the relay'));
      },
      onResponseStart: (_controller, statusCode, headers, statusMessage) => {
        // 1xx interim answers (other than upgrades, which go through openWs) are not forwarded.
        if (stream.done || statusCode < 200) return;
        stream.responded = true;
        stream.status = statusCode;
        const pairs: [string, string][] = [];
        for (const [k, v] of Object.entries(headers)) {
          if (Array.isArray(v)) for (const one of v) pairs.push([k, one]);
          else if (v !== undefined) pairs.push([k, v]);
        }
        const head: ResponseHead = {
          status: statusCode,
          statusText: statusMessage?.slice(0, 128),
          headers: pairs,
        };
        this.send(encodeFrame(FrameType.ResponseHead, stream.id, jsonBytes(head)));
      },
      onResponseData: (controller, chunk) => {
        if (stream.done) return;
        const max = this.limits().maxFramePayloadBytes;
        for (let off = 0; off < chunk.byteLength; off += max) {
          this.send(
            encodeFrame(
              FrameType.Data,
              stream.id,
              chunk.subarray(off, Math.min(off + max, chunk.byteLength)),
            ),
          );
        }
        stream.bytesOut += chunk.byteLength;
        stream.credit -= chunk.byteLength;
        if (stream.credit <= 0 && !stream.paused) {
          stream.paused = true;
          controller.pause();
        }
      },
      onResponseEnd: () => {
        if (stream.done) return;
        this.send(encodeFrame(FrameType.Data, stream.id, undefined, FrameFlag.Fin));
        this.finish(stream);
      },
      onResponseError: (_controller, err) => {
        if (!stream.done) this.localFailed(stream, err);
      },
    };
  }

  /** The local app could not be reached or broke off: a clear 502 page if nothing was sent yet, else a reset. */
  private localFailed(stream: HttpStream, err: Error): void {
    stream.body?.destroy();
    if (!stream.responded) {
      // Nothing reached the visitor yet: answer with a clear page and keep the tunnel up.
      const reason = (err as NodeJS.ErrnoException).code ?? err.message;
      const body = Buffer.from(HTML_502(this.host, this.port, reason));
      const h: ResponseHead = {
        status: 502,
        headers: [
          ['content-type', 'text/html; charset=utf-8'],
          ['content-length', String(body.byteLength)],
          ['x-wingman-error', 'LOCAL_UNREACHABLE'],
        ],
      };
      this.send(encodeFrame(FrameType.ResponseHead, stream.id, jsonBytes(h)));
      this.send(encodeFrame(FrameType.Data, stream.id, body, FrameFlag.Fin));
      stream.status = 502;
    } else {
      this.send(encodeReset(stream.id, 'LOCAL_ERROR'));
    }
    this.finish(stream);
  }

  private requestData(stream: HttpStream, payload: Uint8Array, fin: boolean): void {
    const body = stream.body;
    if (stream.done || !body) return;
    const len = payload.byteLength;
    if (len > 0) {
      // The callback runs once undici has taken the chunk: only then is the relay's window returned.
      body.write(payload, () => {
        stream.owed += len;
        // Return credit in batches; the threshold stays below the window so the relay never stalls.
        if (!stream.done && stream.owed >= this.limits().streamWindowBytes / 4) {
          this.send(encodeWindow(stream.id, stream.owed));
          stream.owed = 0;
        }
      });
    }
    if (fin) {
      body.end();
      stream.body = undefined;
    }
  }

  private openWs(id: number, payload: Uint8Array): void {
    const parsed = parseJson(requestHeadSchema, payload);
    if (!parsed.ok) {
      this.send(encodeReset(id, 'BAD_REQUEST_HEAD'));
      return;
    }
    const head = parsed.value;
    const headers: Record<string, string> = {};
    let protocols: string[] = [];
    for (const [k, v] of head.headers) {
      if (k === 'sec-websocket-protocol')
        protocols = v
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean);
      else if (k !== 'host') headers[k] = v;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(`ws://${this.host}:${this.port}${head.path}`, protocols, {
        headers,
        perMessageDeflate: false,
        maxPayload: this.limits().maxFramePayloadBytes,
      });
    } catch {
      // ws refuses a URL or header it cannot send synchronously; that must not end the client.
      this.send(encodeReset(id, 'BAD_REQUEST_HEAD'));
      return;
    }
    const stream: WsStream = {
      kind: 'ws',
      id,
      ws,
      head,
      startedAt: performance.now(),
      credit: this.limits().streamWindowBytes,
      owed: 0,
      paused: false,
      open: false,
      done: false,
    };
    this.streams.set(id, stream);
    ws.on('open', () => {
      stream.open = true;
      this.send(encodeFrame(FrameType.WsAccept, id, jsonBytes({ protocol: ws.protocol || undefined })));
    });
    ws.on('unexpected-response', (_req, res) => {
      const h: ResponseHead = { status: res.statusCode ?? 502, headers: [] };
      this.send(encodeFrame(FrameType.ResponseHead, id, jsonBytes(h), FrameFlag.Fin));
      stream.done = true;
      this.streams.delete(id);
      res.resume();
      ws.terminate();
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (stream.done) return;
      this.send(encodeFrame(FrameType.WsMessage, id, data, isBinary ? FrameFlag.Binary : 0));
      stream.credit -= data.byteLength;
      if (stream.credit <= 0 && !stream.paused) {
        stream.paused = true;
        ws.pause();
      }
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (stream.done) return;
      stream.done = true;
      this.streams.delete(id);
      if (stream.open) this.send(encodeWsClose(id, code, reason.toString()));
      else {
        const h: ResponseHead = { status: 502, headers: [] };
        this.send(encodeFrame(FrameType.ResponseHead, id, jsonBytes(h), FrameFlag.Fin));
      }
      this.logWs(stream, code);
    });
    ws.on('error', () => {
      // 'close' follows and reports to the relay.
    });
  }

  private oweWs(stream: WsStream, len: number): void {
    stream.owed += len;
    if (!stream.done && stream.owed >= this.limits().streamWindowBytes / 4) {
      this.send(encodeWindow(stream.id, stream.owed));
      stream.owed = 0;
    }
  }

  private logWs(stream: WsStream, code: number): void {
    this.onComplete({
      method: 'WS',
      path: stream.head.path,
      status: code,
      durationMs: performance.now() - stream.startedAt,
      bytesOut: 0,
      websocket: true,
    });
  }

  private finish(stream: HttpStream): void {
    stream.done = true;
    this.streams.delete(stream.id);
    this.onComplete({
      method: stream.head.method,
      path: stream.head.path,
      status: stream.status,
      durationMs: performance.now() - stream.startedAt,
      bytesOut: stream.bytesOut,
      websocket: false,
    });
  }

  private destroy(stream: Stream): void {
    stream.done = true;
    this.streams.delete(stream.id);
    if (stream.kind === 'http') {
      stream.body?.destroy();
      // Not yet on a connection: onRequestStart sees `done` and aborts it there.
      stream.controller?.abort(new Error('stream reset by the relay'));
    } else stream.ws.terminate();
  }

  /** The tunnel is gone: every stream on it is dead. */
  destroyAll(): void {
    for (const s of [...this.streams.values()]) this.destroy(s);
  }

  close(): void {
    this.destroyAll();
    void this.pool.destroy();
  }
}
