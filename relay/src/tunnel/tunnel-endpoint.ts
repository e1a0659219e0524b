import type { WebSocket } from 'uWebSockets.js';
import { timingSafeEqual } from 'node:crypto';
import {
  clientControlSchema,
  decodeFrames,
  decodeText,
  FrameFlag,
  FrameType,
  type Hello,
  PROTOCOL_VERSION,
  parseJson,
  readWindow,
  type SessionMessage,
  TunnelCloseCode,
} from '@wingman/shared';
import type { RelayContext } from '../context.ts';
import {
  failStream,
  maybeResumeUpload,
  onHttpReset,
  onResponseData,
  onResponseHead,
} from '../ingress/http-proxy.ts';
import { failWsStream, onWsFrame } from '../ingress/ws-proxy.ts';
import { newSessionId, type Session, type SocketData, type TunnelSocketData } from './session-registry.ts';

/** A new tunnel connection must say hello within this time. */
const HELLO_TIMEOUT_MS = 10_000;

/** Close a tunnel socket once, with an application close code. */
export function closeTunnel(
  ws: WebSocket<SocketData>,
  data: TunnelSocketData,
  code: number,
  reason: string,
): void {
  if (data.closing) return;
  data.closing = true;
  ws.end(code, reason);
}

export function tunnelOpen(ctx: RelayContext, ws: WebSocket<SocketData>, data: TunnelSocketData): void {
  ctx.metrics.tunnelConnections.inc();
  data.helloTimer = setTimeout(
    () => closeTunnel(ws, data, TunnelCloseCode.BadHello, 'no hello received'),
    HELLO_TIMEOUT_MS,
  );
}

export function tunnelMessage(
  ctx: RelayContext,
  ws: WebSocket<SocketData>,
  data: TunnelSocketData,
  message: ArrayBuffer,
  isBinary: boolean,
): void {
  if (data.closing) return;
  if (!isBinary) return onControl(ctx, ws, data, decodeText(new Uint8Array(message)));
  if (!data.session) return closeTunnel(ws, data, TunnelCloseCode.ProtocolError, 'data frame before hello');
  // Copy: `message` is neutered when this callback returns. Frame payloads below are views of the copy.
  data.inbound.push(new Uint8Array(message.slice(0)));
  if (!data.inboundScheduled) {
    data.inboundScheduled = true;
    setImmediate(processInbound, ctx, ws, data);
  }
}

function processInbound(ctx: RelayContext, ws: WebSocket<SocketData>, data: TunnelSocketData): void {
  data.inboundScheduled = false;
  const messages = data.inbound;
  data.inbound = [];
  for (const message of messages) {
    const session = data.session;
    if (data.closing || !session) return;
    const decoded = decodeFrames(message, ctx.config.MAX_FRAME_PAYLOAD_BYTES);
    if (!decoded.ok) {
      ctx.metrics.errors.inc({ code: decoded.error.code });
      ctx.log.warn(
        { sessionId: session.id, code: decoded.error.code, err: decoded.error.message },
        'malformed frame; closing tunnel',
      );
      return closeTunnel(
        ws,
        data,
        TunnelCloseCode.ProtocolError,
        `${decoded.error.code}: ${decoded.error.message}`.slice(0, 120),
      );
    }
    for (const f of decoded.frames) {
      const stream = session.streams.get(f.streamId);
      // Streams end on both sides independently; frames for a stream already gone are normal.
      if (!stream) continue;
      if (stream.kind === 'ws') {
        onWsFrame(ctx, session, stream, f.type, f.flags, f.payload);
        continue;
      }
      const fin = (f.flags & FrameFlag.Fin) !== 0;
      switch (f.type) {
        case FrameType.ResponseHead:
          onResponseHead(ctx, session, stream, f.payload, fin);
          break;
        case FrameType.Data:
          onResponseData(ctx, session, stream, f.payload, fin);
          break;
        case FrameType.Window: {
          const inc = readWindow(f.payload);
          if (inc === undefined)
            return closeTunnel(ws, data, TunnelCloseCode.ProtocolError, 'bad window frame');
          stream.sendCredit += inc;
          maybeResumeUpload(session, stream);
          break;
        }
        case FrameType.Reset:
          onHttpReset(ctx, session, stream, decodeText(f.payload));
          break;
        default:
          return closeTunnel(
            ws,
            data,
            TunnelCloseCode.ProtocolError,
            `frame type ${f.type} not valid from a client`,
          );
      }
    }
  }
}

function onControl(ctx: RelayContext, ws: WebSocket<SocketData>, data: TunnelSocketData, text: string): void {
  const parsed = parseJson(clientControlSchema, text);
  if (!parsed.ok) {
    ctx.metrics.errors.inc({ code: 'BAD_CONTROL' });
    return closeTunnel(
      ws,
      data,
      TunnelCloseCode.BadHello,
      `invalid control message: ${parsed.error}`.slice(0, 120),
    );
  }
  const msg = parsed.value;
  if (msg.type === 'close') {
    if (data.session) ctx.endSession(data.session, 'client_closed');
    return closeTunnel(ws, data, TunnelCloseCode.Normal, 'session closed by client');
  }
  if (data.session) return closeTunnel(ws, data, TunnelCloseCode.BadHello, 'hello sent twice');
  onHello(ctx, ws, data, msg);
}

function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Refuse a hello: close with a code and record the failed relay connection attempt. */
function refuse(
  ctx: RelayContext,
  ws: WebSocket<SocketData>,
  data: TunnelSocketData,
  code: number,
  reason: string,
): void {
  ctx.events.emit({
    type: 'connection.attempt',
    session_id: '',
    transport: 'relay',
    success: false,
    reason,
    client_ip: data.ip,
  });
  closeTunnel(ws, data, code, reason);
}

function onHello(ctx: RelayContext, ws: WebSocket<SocketData>, data: TunnelSocketData, hello: Hello): void {
  const { config, registry, log } = ctx;
  if (hello.protocol !== PROTOCOL_VERSION) {
    return refuse(
      ctx,
      ws,
      data,
      TunnelCloseCode.UnsupportedProtocol,
      `relay speaks protocol ${PROTOCOL_VERSION}`,
    );
  }
  if (!tokenMatches(ctx.token, hello.token)) {
    ctx.metrics.errors.inc({ code: 'UNAUTHORIZED' });
    log.warn({ ip: data.ip }, 'tunnel hello with missing or wrong token');
    ctx.events.emit({
      type: 'auth.failed',
      session_id: '',
      client_ip: data.ip,
      reason: hello.token === undefined ? 'missing token' : 'wrong token',
    });
    return refuse(ctx, ws, data, TunnelCloseCode.Unauthorized, 'unauthorized: missing or wrong token');
  }
  if (ctx.draining) return refuse(ctx, ws, data, TunnelCloseCode.GoingAway, 'relay is draining; reconnect');
  let session: Session | undefined;
  let resumed = false;
  if (hello.resumeToken) {
    session = registry.byResumeToken(hello.resumeToken);
    if (!session)
      return refuse(ctx, ws, data, TunnelCloseCode.ResumeFailed, 'resume failed: session unknown or ended');
    resumed = true;
    const old = session.tunnel;
    if (old) {
      // A half-open old connection: its in-flight streams are lost with it.
      const oldData = old.getUserData() as TunnelSocketData;
      oldData.session = undefined;
      failAllStreams(ctx, session);
      closeTunnel(old, oldData, TunnelCloseCode.Replaced, 'replaced by a resumed connection');
    }
  } else {
    if (registry.size >= config.MAX_SESSIONS) {
      ctx.metrics.errors.inc({ code: 'AT_CAPACITY' });
      return refuse(ctx, ws, data, TunnelCloseCode.AtCapacity, 'relay at capacity (MAX_SESSIONS)');
    }
    const requested = hello.subdomain?.toLowerCase();
    if (requested && !registry.isFree(requested)) {
      return refuse(ctx, ws, data, TunnelCloseCode.SubdomainTaken, `subdomain ${requested} is in use`);
    }
    session = registry.add({
      id: requested ?? newSessionId(),
      clientIp: data.ip,
      localPort: hello.localPort,
      clientVersion: hello.clientVersion,
      timeoutMs: config.SESSION_TIMEOUT,
    });
    const s = session;
    s.expiryTimer = setTimeout(() => ctx.endSession(s, 'expired'), config.SESSION_TIMEOUT);
    s.expiryTimer.unref();
    ctx.metrics.activeSessions.set(registry.size);
    ctx.events.emit({
      type: 'session.created',
      session_id: s.id,
      port: hello.localPort,
      requested_subdomain: requested ?? null,
      client_version: hello.clientVersion,
      url_kind: 'both',
      api_key_id: null,
      client_ip: data.ip,
    });
  }
  ctx.events.emit({
    type: resumed ? 'connection.resumed' : 'connection.opened',
    session_id: session.id,
    client_ip: data.ip,
  });
  ctx.events.emit({
    type: 'connection.attempt',
    session_id: session.id,
    transport: 'relay',
    success: true,
    reason: resumed ? 'resumed' : 'new session',
    client_ip: data.ip,
  });
  if (data.helloTimer) clearTimeout(data.helloTimer);
  data.helloTimer = undefined;
  if (session.graceTimer) clearTimeout(session.graceTimer);
  session.graceTimer = undefined;
  session.tunnel = ws;
  data.session = session;
  data.sessionId = session.id;
  const reply: SessionMessage = {
    type: 'session',
    sessionId: session.id,
    urls: sessionUrls(ctx, session.id),
    resumeToken: session.resumeToken,
    resumed,
    expiresAt: session.expiresAt,
    limits: {
      maxBodyBytes: config.MAX_BODY_BYTES,
      maxStreams: config.MAX_STREAMS_PER_SESSION,
      sessionTimeoutMs: config.SESSION_TIMEOUT,
      resumeGraceMs: config.RESUME_GRACE_MS,
      streamWindowBytes: config.STREAM_WINDOW_BYTES,
      maxFramePayloadBytes: config.MAX_FRAME_PAYLOAD_BYTES,
      localTimeoutMs: config.LOCAL_TIMEOUT_MS,
    },
  };
  ws.send(JSON.stringify(reply), false);
  log.info(
    { sessionId: session.id, resumed, ip: data.ip, localPort: session.localPort },
    resumed ? 'session resumed' : 'session created',
  );
}

export function sessionUrls(ctx: RelayContext, id: string): { path: string; host: string } {
  const origin = new URL(ctx.publicOrigin);
  const port = origin.port ? `:${origin.port}` : '';
  return {
    path: `${ctx.publicOrigin}/session/${id}/`,
    host: `${origin.protocol}//${id}.${ctx.config.RELAY_DOMAIN}${port}/`,
  };
}

/** Fail every in-flight stream of a session: visitors get 502 or a cut connection, fast. */
export function failAllStreams(ctx: RelayContext, session: Session): void {
  for (const stream of [...session.streams.values()]) {
    if (stream.kind === 'http') failStream(ctx, session, stream, 'CLIENT_GONE');
    else failWsStream(ctx, session, stream, 'CLIENT_GONE', 1011);
  }
}

export function tunnelClose(ctx: RelayContext, data: TunnelSocketData, code: number, reason: string): void {
  ctx.metrics.tunnelConnections.dec();
  data.closing = true;
  data.inbound = [];
  if (data.helloTimer) clearTimeout(data.helloTimer);
  const session = data.session;
  data.session = undefined;
  if (data.sessionId) {
    ctx.events.emit({
      type: 'connection.closed',
      session_id: data.sessionId,
      code: code > 4999 ? 0 : code,
      reason: reason.slice(0, 128),
      duration_ms: Date.now() - data.connectedAt,
    });
  }
  if (!session || session.tunnel === undefined) return;
  session.tunnel = undefined;
  session.out.clear();
  failAllStreams(ctx, session);
  if (!ctx.registry.sessions.has(session.id)) return;
  ctx.log.info(
    { sessionId: session.id, code, graceMs: ctx.config.RESUME_GRACE_MS },
    'tunnel dropped; holding session for resume',
  );
  session.graceTimer = setTimeout(() => ctx.endSession(session, 'grace_elapsed'), ctx.config.RESUME_GRACE_MS);
  session.graceTimer.unref();
}

export function tunnelDrain(session: Session | undefined): void {
  if (!session) return;
  const waiting = [...session.waitingDrain];
  session.waitingDrain.clear();
  for (const s of waiting) maybeResumeUpload(session, s);
}
