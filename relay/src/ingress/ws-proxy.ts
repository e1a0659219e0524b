import type { HttpResponse, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import {
  encodeFrame,
  encodeWsClose,
  FrameFlag,
  FrameType,
  jsonBytes,
  parseJson,
  readWindow,
  readWsClose,
  responseHeadSchema,
  roundMs,
  type VisitorErrorCode,
  wsAcceptSchema,
} from '@wingman/shared';
import {
  completeRequest,
  type RelayContext,
  rejectVisitor,
  requestHeadFor,
  statusLine,
  type VisitorTarget,
} from '../context.ts';
import { sendCredit, sendReset, sendToClient } from '../tunnel/send.ts';
import {
  allocateStreamId,
  type Session,
  type SocketData,
  type VisitorSocketData,
  type WsStream,
} from '../tunnel/session-registry.ts';

/** Visitor WebSocket bytes the client may leave unacknowledged before the relay gives up on the visitor. */
const unackedLimit = (ctx: RelayContext) => 4 * ctx.config.STREAM_WINDOW_BYTES;

/** Start a visitor WebSocket upgrade: ask the client to open the local socket first. */
export function openWsStream(
  ctx: RelayContext,
  res: HttpResponse,
  session: Session,
  target: VisitorTarget,
  prefix: string,
  upgrade: { key: string; extensions: string; context: us_socket_context_t },
): void {
  if (session.streams.size >= ctx.config.MAX_STREAMS_PER_SESSION)
    return rejectVisitor(ctx, res, 'STREAM_LIMIT', target);
  const id = allocateStreamId(session);
  const stream: WsStream = {
    kind: 'ws',
    id,
    target,
    openedAt: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    upgrade: { res, ...upgrade, aborted: false },
    deadline: undefined,
    ws: undefined,
    unacked: 0,
    creditOwed: 0,
    done: false,
  };
  session.streams.set(id, stream);
  res.onAborted(() => {
    if (stream.upgrade) stream.upgrade.aborted = true;
    if (!stream.done) {
      endWsStream(session, stream);
      sendReset(session, id, 'VISITOR_ABORTED');
    }
  });
  stream.deadline = setTimeout(() => {
    stream.deadline = undefined;
    if (stream.ws || stream.done) return;
    sendReset(session, id, 'LOCAL_TIMEOUT');
    refuseUpgrade(ctx, session, stream, 'LOCAL_TIMEOUT');
  }, ctx.config.LOCAL_TIMEOUT_MS);
  sendToClient(
    session,
    encodeFrame(FrameType.WsOpen, id, jsonBytes(requestHeadFor(ctx, target, prefix, true))),
  );
}

function endWsStream(session: Session, stream: WsStream): void {
  stream.done = true;
  if (stream.deadline) clearTimeout(stream.deadline);
  session.streams.delete(stream.id);
}

/** Fail a stream whose upgrade has not completed, with a catalogued error. */
export function refuseUpgrade(
  ctx: RelayContext,
  session: Session,
  stream: WsStream,
  code: VisitorErrorCode,
): void {
  endWsStream(session, stream);
  const up = stream.upgrade;
  stream.upgrade = undefined;
  if (up && !up.aborted) rejectVisitor(ctx, up.res, code, stream.target);
}

/** One websocket.closed event when an open visitor WebSocket ends, whichever side ends it. */
function recordWsClosed(ctx: RelayContext, stream: WsStream, closeCode: number): void {
  ctx.events.emit({
    type: 'websocket.closed',
    session_id: stream.target.sessionId,
    duration_ms: roundMs(performance.now() - stream.openedAt),
    messages_in: stream.messagesIn,
    messages_out: stream.messagesOut,
    bytes_in: stream.bytesIn,
    bytes_out: stream.bytesOut,
    close_code: closeCode,
  });
}

/** Fail a stream in any phase: refuse a pending upgrade, or close an open visitor socket. */
export function failWsStream(
  ctx: RelayContext,
  session: Session,
  stream: WsStream,
  code: VisitorErrorCode,
  closeCode: number,
): void {
  if (stream.done) return;
  if (stream.ws) {
    endWsStream(session, stream);
    recordWsClosed(ctx, stream, closeCode);
    stream.ws.end(closeCode, code);
  } else refuseUpgrade(ctx, session, stream, code);
}

/** Frames from the client for a WebSocket stream. */
export function onWsFrame(
  ctx: RelayContext,
  session: Session,
  stream: WsStream,
  type: number,
  flags: number,
  payload: Uint8Array,
): void {
  switch (type) {
    case FrameType.WsAccept: {
      const up = stream.upgrade;
      const parsed = parseJson(wsAcceptSchema, payload);
      if (!up || stream.ws) return;
      if (!parsed.ok) {
        sendReset(session, stream.id, 'BAD_WS_ACCEPT');
        return refuseUpgrade(ctx, session, stream, 'BAD_UPSTREAM_RESPONSE');
      }
      if (stream.deadline) clearTimeout(stream.deadline);
      stream.deadline = undefined;
      stream.upgrade = undefined;
      if (up.aborted) return;
      const data: VisitorSocketData = { kind: 'visitor', session, streamId: stream.id };
      up.res.cork(() =>
        up.res.upgrade<SocketData>(data, up.key, parsed.value.protocol ?? '', up.extensions, up.context),
      );
      return;
    }
    case FrameType.ResponseHead: {
      // The local app refused the upgrade; pass its status on with a short body.
      const up = stream.upgrade;
      const parsed = parseJson(responseHeadSchema, payload);
      endWsStream(session, stream);
      stream.upgrade = undefined;
      sendReset(session, stream.id, 'UPGRADE_REFUSED');
      if (!up || up.aborted) return;
      const status = parsed.ok ? parsed.value.status : 502;
      up.res.cork(() =>
        up.res
          .writeStatus(statusLine(status))
          .writeHeader('content-type', 'text/plain')
          .end('WebSocket upgrade refused by the local app'),
      );
      completeRequest(ctx, stream.target, {
        status,
        bytesIn: 0,
        bytesOut: 0,
        server: '',
        poweredBy: '',
        errorCode: 'UPGRADE_REFUSED',
      });
      return;
    }
    case FrameType.WsMessage: {
      const ws = stream.ws;
      if (!ws) return;
      stream.messagesOut++;
      stream.bytesOut += payload.byteLength;
      ws.send(payload, (flags & FrameFlag.Binary) !== 0);
      stream.creditOwed += payload.byteLength;
      if (ws.getBufferedAmount() < ctx.config.STREAM_WINDOW_BYTES) flushWsCredit(ctx, session, stream);
      return;
    }
    case FrameType.WsClose: {
      const ws = stream.ws;
      const { code, reason } = readWsClose(payload);
      if (!ws) return refuseUpgrade(ctx, session, stream, 'STREAM_RESET');
      endWsStream(session, stream);
      recordWsClosed(ctx, stream, code);
      // 1005 and 1006 may not appear on the wire (RFC 6455 §7.4.1).
      if (code === 1006) ws.close();
      else if (code === 1005) ws.end();
      else ws.end(code, reason);
      return;
    }
    case FrameType.Window: {
      stream.unacked = Math.max(0, stream.unacked - (readWindow(payload) ?? 0));
      return;
    }
    case FrameType.Reset: {
      failWsStream(ctx, session, stream, 'STREAM_RESET', 1011);
      return;
    }
  }
}

function flushWsCredit(ctx: RelayContext, session: Session, stream: WsStream): void {
  if (stream.creditOwed >= ctx.config.STREAM_WINDOW_BYTES / 4) {
    sendCredit(session, stream.id, stream.creditOwed);
    stream.creditOwed = 0;
  }
}

/** The live stream behind a visitor socket, if it has not ended. */
function liveStream(data: VisitorSocketData): WsStream | undefined {
  const stream = data.session.streams.get(data.streamId);
  return stream?.kind === 'ws' && !stream.done ? stream : undefined;
}

/** uWS open/message/close/drain for visitor sockets. */
export const visitorSocket = {
  open(ctx: RelayContext, ws: WebSocket<SocketData>, data: VisitorSocketData): void {
    const stream = liveStream(data);
    if (!stream) {
      ws.end(1011, 'tunnel stream gone');
      return;
    }
    stream.ws = ws;
    stream.openedAt = performance.now();
    ctx.metrics.websocketStreams.inc();
    completeRequest(ctx, stream.target, {
      status: 101,
      bytesIn: 0,
      bytesOut: 0,
      server: '',
      poweredBy: '',
      errorCode: '',
    });
  },
  message(
    ctx: RelayContext,
    ws: WebSocket<SocketData>,
    data: VisitorSocketData,
    message: ArrayBuffer,
    isBinary: boolean,
  ): void {
    const stream = liveStream(data);
    if (!stream) return;
    stream.messagesIn++;
    stream.bytesIn += message.byteLength;
    stream.unacked += message.byteLength;
    if (stream.unacked > unackedLimit(ctx)) {
      // uWS cannot pause a WebSocket's reads, so a visitor outrunning the local app is closed instead.
      endWsStream(data.session, stream);
      recordWsClosed(ctx, stream, 1013);
      sendToClient(data.session, encodeWsClose(stream.id, 1013, 'visitor exceeded flow-control window'));
      ws.end(1013, 'flow-control window exceeded');
      ctx.metrics.errors.inc({ code: 'WS_FLOW_CONTROL' });
      return;
    }
    sendToClient(
      data.session,
      encodeFrame(FrameType.WsMessage, stream.id, new Uint8Array(message), isBinary ? FrameFlag.Binary : 0),
    );
  },
  close(ctx: RelayContext, data: VisitorSocketData, code: number, message: ArrayBuffer): void {
    ctx.metrics.websocketStreams.dec();
    const stream = liveStream(data);
    if (!stream) return;
    endWsStream(data.session, stream);
    recordWsClosed(ctx, stream, code);
    sendToClient(data.session, encodeWsClose(stream.id, code, Buffer.from(message).toString()));
  },
  drain(data: VisitorSocketData): void {
    const stream = liveStream(data);
    if (stream && stream.creditOwed > 0) {
      sendCredit(data.session, stream.id, stream.creditOwed);
      stream.creditOwed = 0;
    }
  },
};
