import type { HttpResponse, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import { randomBytes } from 'node:crypto';
import { FrameBatcher } from '@wingman/shared';
import type { VisitorTarget } from '../context.ts';

/** userData of every uWS WebSocket: a tunnel client or a visitor. */
export type SocketData = TunnelSocketData | VisitorSocketData;
export interface TunnelSocketData {
  kind: 'tunnel';
  ip: string;
  /** Date.now() when the WebSocket opened. */
  connectedAt: number;
  session: Session | undefined;
  /** Id of the session this connection served, kept after `session` is detached (for its connection.closed event). */
  sessionId: string;
  helloTimer: NodeJS.Timeout | undefined;
  /** Set once the socket is closing or closed (by either side): it must not be used after. */
  closing: boolean;
  /**
   * Binary messages waiting to be processed outside uWS's message callback.
   * uWS corks the tunnel socket during that callback, and while one socket is
   * corked no visitor response can be corked: each header would be its own syscall.
   */
  inbound: Uint8Array[];
  inboundScheduled: boolean;
}
export interface VisitorSocketData {
  kind: 'visitor';
  session: Session;
  streamId: number;
}

/** A visitor HTTP request in flight over a tunnel. */
export interface HttpStream {
  kind: 'http';
  id: number;
  res: HttpResponse;
  target: VisitorTarget;
  /** ms from the visitor's first byte to the response head; set when the head arrives. */
  ttfbMs: number | undefined;
  /** Response `server` and `x-powered-by`: framework hints for analytics. */
  server: string;
  poweredBy: string;
  /** '/session/{id}' for path-based routing, '' for host-based; used to rewrite Location and cookies. */
  prefix: string;
  /** The one deadline: answers 504 if the response head has not arrived. */
  deadline: NodeJS.Timeout | undefined;
  /** Response head accepted from the client (it may still wait in `head` for the first body bytes). */
  headersSent: boolean;
  /**
   * Status line and headers not yet written: uWS cannot send a head without
   * body bytes, so it goes out with the first chunk in one write.
   */
  head: { status: string; headers: [string, string][] } | undefined;
  /** Response head arrived and its status, for metrics. */
  status: number;
  /** Content-Length of the response when known: body is written with tryEnd. */
  totalSize: number | undefined;
  /** Request-body credit granted by the client (bytes we may still send). */
  sendCredit: number;
  /** Visitor upload paused for lack of credit or tunnel backpressure. */
  uploadPaused: boolean;
  /** Response bytes received from the client and not yet credited back. */
  unacked: number;
  /** Response bytes written out and owed to the client as credit. */
  creditOwed: number;
  /** Response chunks waiting for the visitor socket to drain (tryEnd path only). */
  queue: Uint8Array[];
  /** Visitor socket has backpressure: hold credit until onWritable. */
  blocked: boolean;
  /** Client has sent FIN for the response body. */
  responseFin: boolean;
  done: boolean;
  bytesIn: number;
  bytesOut: number;
}

/** A visitor WebSocket passed through a tunnel. */
export interface WsStream {
  kind: 'ws';
  id: number;
  target: VisitorTarget;
  /** performance.now() when the visitor socket opened. */
  openedAt: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Present until the upgrade completes (or the visitor leaves). */
  upgrade:
    | { res: HttpResponse; key: string; extensions: string; context: us_socket_context_t; aborted: boolean }
    | undefined;
  deadline: NodeJS.Timeout | undefined;
  ws: WebSocket<SocketData> | undefined;
  /** Visitor -> client bytes not yet acknowledged by the client. */
  unacked: number;
  /** Client -> visitor bytes delivered and owed to the client as credit. */
  creditOwed: number;
  done: boolean;
}

export type Stream = HttpStream | WsStream;

export interface Session {
  id: string;
  resumeToken: string;
  createdAt: number;
  expiresAt: number;
  clientIp: string;
  localPort: number;
  clientVersion: string;
  tunnel: WebSocket<SocketData> | undefined;
  /** Frames to the client, coalesced per tick into one WebSocket message. */
  out: FrameBatcher;
  streams: Map<number, Stream>;
  nextStreamId: number;
  /** Streams whose uploads wait for the tunnel socket to drain. */
  waitingDrain: Set<HttpStream>;
  graceTimer: NodeJS.Timeout | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  requests: number;
  bytesIn: number;
  bytesOut: number;
}

export type Lookup = { kind: 'live'; session: Session } | { kind: 'expired' } | { kind: 'unknown' };

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** 12 lower-case alphanumerics (~62 bits): valid both in paths and as a DNS label. */
export function newSessionId(): string {
  const bytes = randomBytes(12);
  let id = '';
  for (const b of bytes) id += ID_ALPHABET[b % ID_ALPHABET.length];
  return id;
}

/** The next stream id of a session (u32, never 0), wrapping around. */
export function allocateStreamId(session: Session): number {
  const id = session.nextStreamId;
  session.nextStreamId = id >= 0xffff_fffe ? 1 : id + 1;
  return id;
}

/**
 * Live sessions by id and resume token, plus a bounded memory of ended ids
 * so visitors get 410 rather than 404 for a while after a session ends.
 */
export class SessionRegistry {
  readonly sessions = new Map<string, Session>();
  private readonly byToken = new Map<string, Session>();
  /** id -> time it ended; insertion-ordered, so pruning walks from the oldest. */
  private readonly ended = new Map<string, number>();

  constructor(
    private readonly endedMemoryMs: number,
    private readonly endedMemoryMax = 100_000,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  lookup(id: string): Lookup {
    const s = this.sessions.get(id) ?? this.sessions.get(id.toLowerCase());
    if (s) return { kind: 'live', session: s };
    return this.ended.has(id) || this.ended.has(id.toLowerCase()) ? { kind: 'expired' } : { kind: 'unknown' };
  }

  /** Is `id` free for a new session (not live; ended ids may be reused by request)? */
  isFree(id: string): boolean {
    return !this.sessions.has(id.toLowerCase());
  }

  byResumeToken(token: string): Session | undefined {
    return this.byToken.get(token);
  }

  add(init: {
    id: string;
    clientIp: string;
    localPort: number;
    clientVersion: string;
    timeoutMs: number;
  }): Session {
    const now = Date.now();
    const s: Session = {
      out: new FrameBatcher((msg) => s.tunnel?.send(msg, true)),
      id: init.id,
      resumeToken: randomBytes(24).toString('base64url'),
      createdAt: now,
      expiresAt: now + init.timeoutMs,
      clientIp: init.clientIp,
      localPort: init.localPort,
      clientVersion: init.clientVersion,
      tunnel: undefined,
      streams: new Map(),
      nextStreamId: 1,
      waitingDrain: new Set(),
      graceTimer: undefined,
      expiryTimer: undefined,
      requests: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
    this.ended.delete(s.id);
    this.sessions.set(s.id, s);
    this.byToken.set(s.resumeToken, s);
    return s;
  }

  /** Forget a live session and remember its id as ended. Timers are the caller's. */
  remove(s: Session): void {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    this.byToken.delete(s.resumeToken);
    this.ended.set(s.id, Date.now());
    this.pruneEnded();
  }

  private pruneEnded(): void {
    const cutoff = Date.now() - this.endedMemoryMs;
    for (const [id, at] of this.ended) {
      if (at > cutoff && this.ended.size <= this.endedMemoryMax) break;
      this.ended.delete(id);
    }
  }
}
