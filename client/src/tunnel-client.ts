import { EventEmitter } from 'node:events';
import {
  decodeFrames,
  FrameBatcher,
  PROTOCOL_VERSION,
  parseJson,
  relayControlSchema,
  type SessionLimits,
  type SessionMessage,
  TunnelCloseCode,
} from '@wingman/shared';
import WebSocket from 'ws';
import { LocalProxy, type RequestLog } from './local-proxy.ts';

export const CLIENT_VERSION = '0.1.0';

export interface TunnelClientOptions {
  /** ws(s)://relay/v1/connect */
  relayUrl: string;
  token: string | undefined;
  localHost: string;
  localPort: number;
  subdomain?: string | undefined;
  /** Keep the visitor's Host header instead of rewriting it to the local address. */
  preserveHost?: boolean;
  /** A session to resume first (from a previous run), kept if the relay still holds it. */
  resume?: { sessionId: string; resumeToken: string } | undefined;
  /** Backoff bounds for reconnects. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Close codes after which retrying cannot help. */
const FATAL_CODES = new Set<number>([
  TunnelCloseCode.BadHello,
  TunnelCloseCode.Unauthorized,
  TunnelCloseCode.SubdomainTaken,
  TunnelCloseCode.UnsupportedProtocol,
  // Another wingman process resumed this session; fighting over it would loop forever.
  TunnelCloseCode.Replaced,
  // SESSION_TIMEOUT is the relay's policy; silently starting a new session would sidestep it.
  TunnelCloseCode.SessionExpired,
]);

const DEFAULT_LIMITS: SessionLimits = {
  maxBodyBytes: 0,
  maxStreams: 0,
  sessionTimeoutMs: 0,
  resumeGraceMs: 0,
  streamWindowBytes: 256 * 1024,
  maxFramePayloadBytes: 64 * 1024,
  localTimeoutMs: 0,
};

export interface TunnelClientEvents {
  session: [SessionMessage];
  request: [RequestLog];
  disconnected: [{ code: number; reason: string; retryInMs: number }];
  goaway: [string];
  fatal: [{ code: number; reason: string }];
  closed: [];
}

/** Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"). */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(minMs / 2 + random() * (cap - minMs / 2));
}

/**
 * The tunnel client: keeps one WebSocket to the relay, resumes its session
 * after drops and goaways, and proxies streams to the local app.
 */
export class TunnelClient extends EventEmitter<TunnelClientEvents> {
  private ws: WebSocket | undefined;
  private session: SessionMessage | undefined;
  private limits: SessionLimits = DEFAULT_LIMITS;
  private attempt = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Session id to ask for again if resume fails (relay restarted), so the URL stays the same. */
  private wantedId: string | undefined;
  /** Resume token of the session to continue; survives drops, cleared when the relay forgets the session. */
  private resumeToken: string | undefined;
  private readonly batcher: FrameBatcher;
  private readonly proxy: LocalProxy;

  constructor(private readonly opts: TunnelClientOptions) {
    super();
    this.wantedId = opts.resume?.sessionId ?? opts.subdomain;
    this.resumeToken = opts.resume?.resumeToken;
    this.batcher = new FrameBatcher((msg) => this.ws?.send(msg));
    this.proxy = new LocalProxy(
      opts.localHost,
      opts.localPort,
      (frame) => this.batcher.push(frame),
      () => this.limits,
      (entry) => this.emit('request', entry),
      opts.preserveHost ?? false,
    );
  }

  get currentSession(): SessionMessage | undefined {
    return this.session;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  private connect(): void {
    this.retryTimer = undefined;
    const ws = new WebSocket(this.opts.relayUrl, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          token: this.opts.token,
          localPort: this.opts.localPort,
          subdomain: this.resumeToken ? undefined : this.wantedId,
          resumeToken: this.resumeToken,
          clientVersion: `wingman/${CLIENT_VERSION}`,
        }),
      );
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return this.onControl(data.toString());
      const decoded = decodeFrames(data, 64 * 1024 * 1024);
      if (!decoded.ok) {
        ws.close(TunnelCloseCode.ProtocolError, decoded.error.code);
        return;
      }
      for (const f of decoded.frames) this.proxy.onFrame(f.type, f.flags, f.streamId, f.payload);
    });
    ws.on('close', (code: number, reasonBuf: Buffer) => this.onClose(ws, code, reasonBuf.toString()));
    ws.on('error', () => {
      // 'close' follows with the code; errors such as ECONNREFUSED just lead to a retry.
    });
  }

  private onControl(text: string): void {
    const parsed = parseJson(relayControlSchema, text);
    if (!parsed.ok) return;
    const msg = parsed.value;
    if (msg.type === 'goaway') {
      // The relay drains in-flight streams, then closes; reconnect promptly after that.
      this.attempt = 0;
      this.emit('goaway', msg.reason);
      return;
    }
    this.session = msg;
    this.wantedId = msg.sessionId;
    this.resumeToken = msg.resumeToken;
    this.limits = msg.limits;
    this.attempt = 0;
    this.emit('session', msg);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.batcher.clear();
    this.proxy.destroyAll();
    if (this.stopped) {
      this.emit('closed');
      return;
    }
    if (FATAL_CODES.has(code)) {
      this.stopped = true;
      this.emit('fatal', { code, reason });
      return;
    }
    if (code === TunnelCloseCode.ResumeFailed) {
      // The relay no longer knows the session: start a new one, asking for the same id.
      this.resumeToken = undefined;
    }
    const delay =
      code === TunnelCloseCode.ResumeFailed
        ? 0
        : backoffDelay(this.attempt++, this.opts.minBackoffMs ?? 250, this.opts.maxBackoffMs ?? 15_000);
    this.emit('disconnected', { code, reason, retryInMs: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Close the session for good (Ctrl-C): the relay forgets it and its URL answers 410. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.proxy.close();
    if (!ws) {
      this.emit('closed');
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (ws.readyState === WebSocket.OPEN) {
        this.batcher.flush();
        ws.send(JSON.stringify({ type: 'close' }));
        ws.close(TunnelCloseCode.Normal, 'client closing');
      } else ws.terminate();
    });
  }
}
