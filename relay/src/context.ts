import type { HttpResponse } from 'uWebSockets.js';
import type { EventInput, Logger, RequestHead, VisitorErrorCode } from '@wingman/shared';
import {
  pathWithoutQuery,
  referrerHost,
  roundMs,
  STATUS_TEXT,
  VisitorErrors,
  visitorErrorBody,
} from '@wingman/shared';
import type { RelayConfig } from './config.ts';
import { forwardRequestHeaders } from './ingress/rewrite.ts';
import { type RelayMetricsSet, statusClass } from './observability/metrics.ts';
import type { Session, SessionRegistry } from './tunnel/session-registry.ts';

/** What every relay capability shares. Built once in server.ts and passed in explicitly. */
export interface RelayContext {
  readonly config: Readonly<RelayConfig>;
  readonly log: Logger;
  readonly metrics: RelayMetricsSet;
  readonly registry: SessionRegistry;
  /** The shared client token in force (from config, or generated in development). */
  readonly token: string;
  /** Origin visitors use, e.g. https://relay.example.com; no trailing slash. */
  readonly publicOrigin: string;
  /** Scheme of publicOrigin, for X-Forwarded-Proto (decided once, not per request). */
  readonly publicProto: 'http' | 'https';
  draining: boolean;
  /** Analytics events; a no-op when EVENTS_ENABLED=false. Never blocks. */
  readonly events: { emit(event: EventInput): void };
  /** Ends a session for good: fails its streams, forgets it, closes its tunnel. */
  endSession(session: Session, reason: 'client_closed' | 'expired' | 'grace_elapsed' | 'shutdown'): void;
}

export const statusLine = (status: number, text?: string): string =>
  `${status} ${text || STATUS_TEXT[status] || 'Status'}`;

/** Everything copied out of the uWS request before the handler returns (req is invalid after that). */
export interface VisitorRequest {
  method: string;
  host: string;
  headers: [string, string][];
  headerBytes: number;
  ip: string;
  userAgent: string;
  referer: string;
  startedAt: number;
  requestId: string;
}

/** A visitor request and where it was routed, for metrics and its request.completed event. */
export interface VisitorTarget {
  visitor: VisitorRequest;
  /** The session id from the URL ('' when the id was malformed). */
  sessionId: string;
  hostKind: 'path' | 'host';
  /** Path as forwarded (prefix stripped), with query. */
  path: string;
}

export interface Completion {
  status: number;
  /** Time to the response head; defaults to the whole duration. */
  ttfbMs?: number | undefined;
  bytesIn: number;
  bytesOut: number;
  server: string;
  poweredBy: string;
  errorCode: string;
}

/** The head forwarded to the client for a visitor request or WebSocket upgrade. */
export function requestHeadFor(
  ctx: RelayContext,
  t: VisitorTarget,
  prefix: string,
  forWebSocket: boolean,
): RequestHead {
  const v = t.visitor;
  const headers = forwardRequestHeaders(
    v.headers,
    { visitorIp: v.ip, proto: ctx.publicProto, host: v.host, prefix, trustProxy: ctx.config.TRUST_PROXY },
    forWebSocket,
  );
  headers.push(['x-request-id', v.requestId]);
  return { method: forWebSocket ? 'GET' : v.method, path: t.path, headers };
}

/** Record a finished visitor request: metrics and one request.completed event. Called exactly once per request. */
export function completeRequest(ctx: RelayContext, t: VisitorTarget, c: Completion): void {
  const durationMs = performance.now() - t.visitor.startedAt;
  ctx.metrics.requests.inc({ status_class: statusClass(c.status) });
  ctx.metrics.requestDuration.observe(durationMs / 1000);
  // Failures are logged with the request id the local app also saw (X-Request-Id); the rest at debug.
  const failed = c.status >= 500 || c.errorCode === 'VISITOR_ABORTED';
  if (failed || ctx.log.isLevelEnabled('debug')) {
    const line = {
      reqId: t.visitor.requestId,
      sessionId: t.sessionId,
      method: t.visitor.method,
      status: c.status,
      ms: Math.round(durationMs),
      code: c.errorCode || undefined,
    };
    if (failed) ctx.log.warn(line, 'request failed');
    else ctx.log.debug(line, 'request');
  }
  // Building the event (query stripping, referrer parsing) is skipped when nothing listens.
  if (!ctx.config.EVENTS_ENABLED) return;
  ctx.events.emit({
    type: 'request.completed',
    session_id: t.sessionId,
    method: t.visitor.method.slice(0, 32),
    host_kind: t.hostKind,
    status: c.status,
    duration_ms: roundMs(durationMs),
    ttfb_ms: roundMs(c.ttfbMs ?? durationMs),
    bytes_in: c.bytesIn,
    bytes_out: c.bytesOut,
    path: pathWithoutQuery(t.path),
    visitor_ip: t.visitor.ip,
    user_agent: t.visitor.userAgent.slice(0, 512),
    referrer_host: referrerHost(t.visitor.referer),
    server: c.server.slice(0, 128),
    powered_by: c.poweredBy.slice(0, 128),
    error_code: c.errorCode,
  });
}

/**
 * Answer with a catalogued error: small JSON body, no-store. Counts the error
 * code; visitor requests also go through `rejectVisitor` for their event.
 * Call only while `res` is valid (not aborted, not ended).
 */
export function answerError(ctx: RelayContext, res: HttpResponse, code: VisitorErrorCode): void {
  const { status } = VisitorErrors[code];
  res.cork(() => {
    res
      .writeStatus(statusLine(status))
      .writeHeader('content-type', 'application/json')
      .writeHeader('cache-control', 'no-store');
    if (status === 503) res.writeHeader('retry-after', '5');
    res.end(visitorErrorBody(code));
  });
  ctx.metrics.errors.inc({ code });
}

/** Answer a visitor request with a catalogued error and record it. */
export function rejectVisitor(
  ctx: RelayContext,
  res: HttpResponse,
  code: VisitorErrorCode,
  t: VisitorTarget,
): void {
  answerError(ctx, res, code);
  completeRequest(ctx, t, {
    status: VisitorErrors[code].status,
    bytesIn: 0,
    bytesOut: 0,
    server: '',
    poweredBy: '',
    errorCode: code,
  });
}
