import type { HttpResponse } from 'uWebSockets.js';
import {
  encodeFrame,
  FrameFlag,
  FrameType,
  jsonBytes,
  parseJson,
  responseHeadSchema,
  type VisitorErrorCode,
  VisitorErrors,
} from '@wingman/shared';
import {
  answerError,
  completeRequest,
  type RelayContext,
  rejectVisitor,
  requestHeadFor,
  statusLine,
  type VisitorTarget,
} from '../context.ts';
import { sendCredit, sendReset, sendToClient, tunnelBackpressured } from '../tunnel/send.ts';
import { allocateStreamId, type HttpStream, type Session } from '../tunnel/session-registry.ts';
import { rewriteResponseHeaders } from './rewrite.ts';

/** Forward a visitor request over a live tunnel as a new stream. */
export function openHttpStream(
  ctx: RelayContext,
  res: HttpResponse,
  session: Session,
  target: VisitorTarget,
  prefix: string,
): void {
  const { config, metrics } = ctx;
  const req = target.visitor;
  if (session.streams.size >= config.MAX_STREAMS_PER_SESSION)
    return rejectVisitor(ctx, res, 'STREAM_LIMIT', target);
  let contentLength = -1;
  let chunked = false;
  for (const [k, v] of req.headers) {
    if (k === 'content-length') contentLength = Number(v);
    else if (k === 'transfer-encoding') chunked = true;
  }
  if (contentLength > config.MAX_BODY_BYTES) return rejectVisitor(ctx, res, 'BODY_TOO_LARGE', target);
  const hasBody = chunked || contentLength > 0;

  const id = allocateStreamId(session);
  const stream: HttpStream = {
    kind: 'http',
    id,
    res,
    target,
    ttfbMs: undefined,
    server: '',
    poweredBy: '',
    prefix,
    deadline: undefined,
    headersSent: false,
    head: undefined,
    status: 0,
    totalSize: undefined,
    sendCredit: config.STREAM_WINDOW_BYTES,
    uploadPaused: false,
    unacked: 0,
    creditOwed: 0,
    queue: [],
    blocked: false,
    responseFin: false,
    done: false,
    bytesIn: 0,
    bytesOut: 0,
  };
  session.streams.set(id, stream);
  session.requests++;
  metrics.inflightStreams.inc();
  stream.deadline = setTimeout(onDeadline, config.LOCAL_TIMEOUT_MS, ctx, session, stream);

  res.onAborted(() => {
    if (stream.done) return;
    // 499: the visitor closed the connection before the answer (nginx's convention).
    finishStream(ctx, session, stream, 499, 'VISITOR_ABORTED');
    sendReset(session, id, 'VISITOR_ABORTED');
  });

  const head = requestHeadFor(ctx, target, prefix, false);
  sendToClient(session, encodeFrame(FrameType.RequestHead, id, jsonBytes(head), hasBody ? 0 : FrameFlag.Fin));
  if (hasBody) res.onData((ab, isLast) => onUpload(ctx, session, stream, ab, isLast));
}

function onUpload(
  ctx: RelayContext,
  session: Session,
  stream: HttpStream,
  ab: ArrayBuffer,
  isLast: boolean,
): void {
  if (stream.done) return;
  const max = ctx.config.MAX_FRAME_PAYLOAD_BYTES;
  stream.bytesIn += ab.byteLength;
  session.bytesIn += ab.byteLength;
  ctx.metrics.bytesIn.inc(ab.byteLength);
  if (stream.bytesIn > ctx.config.MAX_BODY_BYTES) {
    sendReset(session, stream.id, 'BODY_TOO_LARGE');
    return failStream(ctx, session, stream, 'BODY_TOO_LARGE');
  }
  // `ab` is neutered when this callback returns; encodeFrame copies it.
  const bytes = new Uint8Array(ab);
  if (bytes.byteLength === 0) {
    if (isLast) sendToClient(session, encodeFrame(FrameType.Data, stream.id, undefined, FrameFlag.Fin));
  } else {
    for (let off = 0; off < bytes.byteLength; off += max) {
      const end = Math.min(off + max, bytes.byteLength);
      const fin = isLast && end === bytes.byteLength ? FrameFlag.Fin : 0;
      sendToClient(session, encodeFrame(FrameType.Data, stream.id, bytes.subarray(off, end), fin));
    }
  }
  stream.sendCredit -= bytes.byteLength;
  if (isLast) return;
  if (stream.sendCredit <= 0) pauseUpload(stream);
  else if (tunnelBackpressured(session)) {
    pauseUpload(stream);
    session.waitingDrain.add(stream);
  }
}

function pauseUpload(stream: HttpStream): void {
  if (stream.uploadPaused) return;
  stream.uploadPaused = true;
  stream.res.pause();
}

/** Resume a paused upload when it has credit and the tunnel is not backpressured. */
export function maybeResumeUpload(session: Session, stream: HttpStream): void {
  if (!stream.uploadPaused || stream.done || stream.sendCredit <= 0) return;
  if (tunnelBackpressured(session)) {
    session.waitingDrain.add(stream);
    return;
  }
  stream.uploadPaused = false;
  stream.res.resume();
}

function onDeadline(ctx: RelayContext, session: Session, stream: HttpStream): void {
  stream.deadline = undefined;
  if (stream.done || stream.headersSent) return;
  sendReset(session, stream.id, 'LOCAL_TIMEOUT');
  failStream(ctx, session, stream, 'LOCAL_TIMEOUT');
}

/** Answer the visitor with an error if nothing was sent yet, else cut the connection; then forget the stream. */
export function failStream(
  ctx: RelayContext,
  session: Session,
  stream: HttpStream,
  code: VisitorErrorCode,
): void {
  if (stream.done) return;
  // A head still deferred has not reached the visitor, so a clean error answer is still possible.
  const written = stream.headersSent && stream.head === undefined;
  if (!written) {
    answerError(ctx, stream.res, code);
    finishStream(ctx, session, stream, VisitorErrors[code].status, code);
  } else {
    ctx.metrics.errors.inc({ code });
    finishStream(ctx, session, stream, stream.status, code);
    // Headers are out: the only honest signal left is an aborted connection.
    stream.res.close();
  }
}

/** Forget a stream and record the request once. */
function finishStream(
  ctx: RelayContext,
  session: Session,
  stream: HttpStream,
  status: number,
  errorCode = '',
): void {
  stream.done = true;
  if (stream.deadline) clearTimeout(stream.deadline);
  session.streams.delete(stream.id);
  session.waitingDrain.delete(stream);
  ctx.metrics.inflightStreams.dec();
  completeRequest(ctx, stream.target, {
    status,
    ttfbMs: stream.ttfbMs,
    bytesIn: stream.bytesIn,
    bytesOut: stream.bytesOut,
    server: stream.server,
    poweredBy: stream.poweredBy,
    errorCode,
  });
}

/** The client's ResponseHead frame for an HTTP stream. */
export function onResponseHead(
  ctx: RelayContext,
  session: Session,
  stream: HttpStream,
  payload: Uint8Array,
  fin: boolean,
): void {
  if (stream.headersSent) {
    sendReset(session, stream.id, 'DUPLICATE_HEAD');
    return failStream(ctx, session, stream, 'BAD_UPSTREAM_RESPONSE');
  }
  const parsed = parseJson(responseHeadSchema, payload);
  if (!parsed.ok) {
    ctx.log.warn(
      { sessionId: session.id, streamId: stream.id, err: parsed.error },
      'invalid response head from client',
    );
    sendReset(session, stream.id, 'BAD_RESPONSE_HEAD');
    return failStream(ctx, session, stream, 'BAD_UPSTREAM_RESPONSE');
  }
  const head = parsed.value;
  if (stream.deadline) {
    clearTimeout(stream.deadline);
    stream.deadline = undefined;
  }
  stream.ttfbMs = performance.now() - stream.target.visitor.startedAt;
  const noBody =
    stream.target.visitor.method === 'HEAD' ||
    head.status === 204 ||
    head.status === 304 ||
    head.status < 200;
  let length: number | undefined;
  for (const [k, v] of head.headers) {
    if (k.length === 14 && k.toLowerCase() === 'content-length') {
      const n = Number(v);
      if (Number.isSafeInteger(n) && n >= 0) length = n;
    } else if (k.length === 6 && k.toLowerCase() === 'server') stream.server = v;
    else if (k.length === 12 && k.toLowerCase() === 'x-powered-by') stream.poweredBy = v;
  }
  const headers = rewriteResponseHeaders(head.headers, {
    prefix: stream.prefix,
    publicOrigin: ctx.publicOrigin,
    localOrigins: [`http://localhost:${session.localPort}`, `http://127.0.0.1:${session.localPort}`],
  });
  stream.headersSent = true;
  stream.status = head.status;
  const pending = { status: statusLine(head.status, head.statusText), headers };
  if (!noBody && !fin) {
    stream.totalSize = length;
    stream.head = pending;
    return;
  }
  const res = stream.res;
  res.cork(() => {
    writeHead(res, pending);
    if (noBody) res.endWithoutBody(length);
    else res.end();
  });
  finishStream(ctx, session, stream, head.status);
  if (!fin) sendReset(session, stream.id, 'NO_BODY_EXPECTED');
}

function writeHead(res: HttpResponse, head: { status: string; headers: [string, string][] }): void {
  res.writeStatus(head.status);
  for (const [k, v] of head.headers) res.writeHeader(k, v);
}

/** Write a deferred head, and arm backpressure handling, before the first body bytes. Call inside cork. */
function flushHead(ctx: RelayContext, session: Session, stream: HttpStream): void {
  const head = stream.head;
  if (!head) return;
  stream.head = undefined;
  writeHead(stream.res, head);
  stream.res.onWritable(() => onWritable(ctx, session, stream));
}

/** The client's Data frame for an HTTP stream: write to the visitor, honouring backpressure. */
export function onResponseData(
  ctx: RelayContext,
  session: Session,
  stream: HttpStream,
  payload: Uint8Array,
  fin: boolean,
): void {
  if (!stream.headersSent) {
    sendReset(session, stream.id, 'DATA_BEFORE_HEAD');
    return failStream(ctx, session, stream, 'BAD_UPSTREAM_RESPONSE');
  }
  const { config } = ctx;
  stream.unacked += payload.byteLength;
  if (stream.unacked > config.STREAM_WINDOW_BYTES + config.MAX_FRAME_PAYLOAD_BYTES) {
    // The client ignored flow control; refuse to buffer without bound.
    sendReset(session, stream.id, 'FLOW_CONTROL');
    return failStream(ctx, session, stream, 'BAD_UPSTREAM_RESPONSE');
  }
  stream.bytesOut += payload.byteLength;
  session.bytesOut += payload.byteLength;
  ctx.metrics.bytesOut.inc(payload.byteLength);
  if (fin) stream.responseFin = true;
  const res = stream.res;
  if (stream.totalSize === undefined) {
    res.cork(() => {
      flushHead(ctx, session, stream);
      if (payload.byteLength > 0 && !res.write(payload)) stream.blocked = true;
      if (fin) {
        res.end();
        finishStream(ctx, session, stream, stream.status);
      }
    });
    owe(session, stream, payload.byteLength, config.STREAM_WINDOW_BYTES);
    return;
  }
  if (stream.queue.length > 0) {
    stream.queue.push(payload);
    return;
  }
  res.cork(() => {
    flushHead(ctx, session, stream);
    writeKnownLength(ctx, session, stream, payload);
  });
}

/** tryEnd one chunk of a Content-Length body. Returns false when the visitor socket is full. */
function writeKnownLength(
  ctx: RelayContext,
  session: Session,
  stream: HttpStream,
  chunk: Uint8Array,
): boolean {
  const res = stream.res;
  const total = stream.totalSize!;
  const before = res.getWriteOffset();
  const [ok, done] = res.tryEnd(chunk, total);
  if (done) {
    owe(session, stream, chunk.byteLength, 0);
    finishStream(ctx, session, stream, stream.status);
    return true;
  }
  if (ok) {
    if (stream.responseFin) {
      // Client ended the body short of its Content-Length: cut the connection rather than hang.
      failStream(ctx, session, stream, 'BAD_UPSTREAM_RESPONSE');
      return true;
    }
    owe(session, stream, chunk.byteLength, ctx.config.STREAM_WINDOW_BYTES);
    return true;
  }
  const written = res.getWriteOffset() - before;
  stream.blocked = true;
  // Payloads are views of the relay's own copy of the message (see processInbound), safe to keep.
  stream.queue.unshift(chunk.subarray(written));
  owe(session, stream, written, ctx.config.STREAM_WINDOW_BYTES);
  return false;
}

function onWritable(ctx: RelayContext, session: Session, stream: HttpStream): boolean {
  if (stream.done) return true;
  if (stream.totalSize !== undefined) {
    while (stream.queue.length > 0) {
      const chunk = stream.queue.shift()!;
      if (!writeKnownLength(ctx, session, stream, chunk)) return false;
      if (stream.done) return true;
    }
  }
  stream.blocked = false;
  owe(session, stream, 0, 0);
  return true;
}

/**
 * Record `bytes` written to the visitor and return credit to the client once
 * enough has accumulated (or at once when `threshold` is 0), unless blocked.
 */
function owe(session: Session, stream: HttpStream, bytes: number, threshold: number): void {
  stream.creditOwed += bytes;
  if (stream.blocked || stream.done || stream.creditOwed === 0) return;
  if (stream.creditOwed >= threshold / 4) {
    stream.unacked -= stream.creditOwed;
    sendCredit(session, stream.id, stream.creditOwed);
    stream.creditOwed = 0;
  }
}

/** The client's Reset frame for an HTTP stream. */
export function onHttpReset(ctx: RelayContext, session: Session, stream: HttpStream, code: string): void {
  const known: VisitorErrorCode =
    code === 'LOCAL_UNREACHABLE' || code === 'LOCAL_TIMEOUT' ? code : 'STREAM_RESET';
  failStream(ctx, session, stream, known);
}
