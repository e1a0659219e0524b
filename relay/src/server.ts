import type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  us_listen_socket,
  us_socket_context_t,
} from 'uWebSockets.js';
import { join } from 'node:path';
import type { Logger } from '@wingman/shared';
import { createLogger, TunnelCloseCode } from '@wingman/shared';
import type { RelayConfig } from './config.ts';
import {
  answerError,
  type RelayContext,
  rejectVisitor,
  type VisitorRequest,
  type VisitorTarget,
} from './context.ts';
import { linkNats } from './events/nats-link.ts';
import { EventPublisher } from './events/publisher.ts';
import { Spool } from './events/spool.ts';
import { openHttpStream } from './ingress/http-proxy.ts';
import { type Route, routeRequest } from './ingress/route.ts';
import { openWsStream, visitorSocket } from './ingress/ws-proxy.ts';
import { createRelayMetrics } from './observability/metrics.ts';
import {
  type Session,
  SessionRegistry,
  type SocketData,
  type TunnelSocketData,
} from './tunnel/session-registry.ts';
import {
  closeTunnel,
  failAllStreams,
  tunnelClose,
  tunnelDrain,
  tunnelMessage,
  tunnelOpen,
} from './tunnel/tunnel-endpoint.ts';
import { loadNativeUws } from './uws.ts';

export const TUNNEL_PATH = '/v1/connect';

export interface Relay {
  readonly ctx: RelayContext;
  /** Start listening; resolves with the bound port. */
  listen(): Promise<number>;
  /** Stop accepting, send goaway, drain in-flight streams up to DRAIN_TIMEOUT_MS, close everything. */
  shutdown(): Promise<void>;
}

const END_CODES = {
  client_closed: [TunnelCloseCode.Normal, 'session closed by client'],
  expired: [TunnelCloseCode.SessionExpired, 'session expired (SESSION_TIMEOUT)'],
  grace_elapsed: [TunnelCloseCode.GoingAway, 'session ended'],
  shutdown: [TunnelCloseCode.GoingAway, 'relay shutting down'],
} as const;

export function createRelay(
  config: Readonly<RelayConfig>,
  token: string,
  log: Logger = createLogger('relay', config.LOG_LEVEL),
): Relay {
  const uws = loadNativeUws();
  const metrics = createRelayMetrics();
  const registry = new SessionRegistry(config.EXPIRED_MEMORY_MS);
  const bootId = Date.now().toString(36);
  let requestSeq = 0;
  let listenSocket: us_listen_socket | undefined;
  let boundPort = 0;

  const publisher = config.EVENTS_ENABLED
    ? new EventPublisher(
        config.RELAY_ID,
        new Spool(config.SPOOL_DIR ?? join(config.DATA_DIR, 'spool'), config.SPOOL_MAX_BYTES),
        {
          maxEvents: config.EVENT_BATCH_MAX,
          maxEnvelopeBytes: config.EVENT_ENVELOPE_MAX_BYTES,
          maxAgeMs: config.EVENT_BATCH_MAX_AGE_MS,
          maxBufferBytes: config.EVENT_BUFFER_MAX_BYTES,
          publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
        },
        metrics,
        log,
      )
    : undefined;
  const natsLink = publisher
    ? linkNats(config, publisher, log, config.EVENT_THREAD_SCHED, metrics)
    : undefined;

  const ctx: RelayContext = {
    config,
    log,
    metrics,
    registry,
    token,
    publicOrigin: (config.PUBLIC_URL ?? `http://${config.HOST}:${config.PORT}`).replace(/\/$/, ''),
    publicProto: config.PUBLIC_URL?.startsWith('https:') ? 'https' : 'http',
    draining: false,
    events: publisher ?? { emit() {} },
    endSession(session: Session, reason) {
      if (session.graceTimer) clearTimeout(session.graceTimer);
      if (session.expiryTimer) clearTimeout(session.expiryTimer);
      session.graceTimer = session.expiryTimer = undefined;
      failAllStreams(ctx, session);
      registry.remove(session);
      metrics.activeSessions.set(registry.size);
      const ws = session.tunnel;
      session.tunnel = undefined;
      session.out.clear();
      if (ws) {
        const data = ws.getUserData() as TunnelSocketData;
        data.session = undefined;
        closeTunnel(ws, data, END_CODES[reason][0], END_CODES[reason][1]);
      }
      const durationMs = Date.now() - session.createdAt;
      if (reason === 'expired')
        ctx.events.emit({ type: 'session.expired', session_id: session.id, duration_ms: durationMs });
      ctx.events.emit({
        type: 'session.closed',
        session_id: session.id,
        reason,
        duration_ms: durationMs,
        requests: session.requests,
        bytes_in: session.bytesIn,
        bytes_out: session.bytesOut,
      });
      log.info({ sessionId: session.id, reason, requests: session.requests }, 'session ended');
    },
  };

  /** Copy what we need from `req`: it is invalid once the handler returns. */
  function readRequest(res: HttpResponse, req: HttpRequest): VisitorRequest {
    const headers: [string, string][] = [];
    let headerBytes = 0;
    let userAgent = '';
    let referer = '';
    req.forEach((k, v) => {
      headers.push([k, v]);
      headerBytes += k.length + v.length + 4;
      if (k === 'user-agent') userAgent = v;
      else if (k === 'referer') referer = v;
    });
    return {
      method: req.getCaseSensitiveMethod().toUpperCase(),
      host: req.getHeader('host'),
      headers,
      headerBytes,
      userAgent,
      referer,
      ip: Buffer.from(res.getRemoteAddressAsText()).toString(),
      startedAt: performance.now(),
      requestId: `${bootId}-${(++requestSeq).toString(36)}`,
    };
  }

  /** Shared visitor checks for HTTP and WebSocket: answer errors here, return the live session otherwise. */
  function resolveSession(res: HttpResponse, t: VisitorTarget): Session | undefined {
    if (ctx.draining) return void rejectVisitor(ctx, res, 'DRAINING', t);
    if (t.visitor.method === 'CONNECT') return void rejectVisitor(ctx, res, 'METHOD_NOT_ALLOWED', t);
    if (t.visitor.headerBytes > config.MAX_HEADER_BYTES)
      return void rejectVisitor(ctx, res, 'HEADERS_TOO_LARGE', t);
    const found = registry.lookup(t.sessionId);
    if (found.kind === 'expired') return void rejectVisitor(ctx, res, 'SESSION_EXPIRED', t);
    if (found.kind === 'unknown') return void rejectVisitor(ctx, res, 'SESSION_NOT_FOUND', t);
    if (!found.session.tunnel) return void rejectVisitor(ctx, res, 'CLIENT_GONE', t);
    return found.session;
  }

  /** Route a visitor request: a target for the tunnel, or an answer given here (undefined). */
  function targetOf(
    res: HttpResponse,
    visitor: VisitorRequest,
    url: string,
    query: string,
  ): { route: Route; target?: VisitorTarget } {
    const route = routeRequest(visitor.host, url, query, config.RELAY_DOMAIN);
    if (route.kind === 'bad-id') {
      rejectVisitor(ctx, res, 'BAD_SESSION_ID', {
        visitor,
        sessionId: '',
        hostKind: route.hostKind,
        path: url,
      });
      return { route };
    }
    if (route.kind !== 'session') return { route };
    return {
      route,
      target: { visitor, sessionId: route.sessionId, hostKind: route.hostKind, path: route.path },
    };
  }

  function onHttp(res: HttpResponse, req: HttpRequest): void {
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const visitor = readRequest(res, req);
    const { route, target } = targetOf(res, visitor, url, query);
    if (route.kind === 'relay') return serveRelayEndpoint(res, visitor.method, route.path);
    if (route.kind === 'add-slash') {
      res.cork(() => res.writeStatus('308 Permanent Redirect').writeHeader('location', route.location).end());
      return;
    }
    if (route.kind !== 'session' || !target) return;
    const session = resolveSession(res, target);
    if (session) openHttpStream(ctx, res, session, target, route.prefix);
  }

  function onUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const visitor = readRequest(res, req);
    const { route, target } = targetOf(res, visitor, url, query);
    if (route.kind === 'relay' && route.path === TUNNEL_PATH) {
      if (ctx.draining) return answerError(ctx, res, 'DRAINING');
      const data: TunnelSocketData = {
        kind: 'tunnel',
        ip: visitor.ip,
        connectedAt: Date.now(),
        session: undefined,
        sessionId: '',
        helloTimer: undefined,
        closing: false,
        inbound: [],
        inboundScheduled: false,
      };
      res.upgrade<SocketData>(data, key, protocol, extensions, context);
      return;
    }
    if (route.kind === 'bad-id') return;
    if (route.kind !== 'session' || !target) return answerError(ctx, res, 'NOT_FOUND');
    const session = resolveSession(res, target);
    if (session) openWsStream(ctx, res, session, target, route.prefix, { key, extensions, context });
  }

  function serveRelayEndpoint(res: HttpResponse, method: string, path: string): void {
    if (method !== 'GET' && method !== 'HEAD') return answerError(ctx, res, 'NOT_FOUND');
    if (path === '/health') return json(res, 200, { status: 'ok' });
    if (path === '/ready') {
      const capacity = registry.size / config.MAX_SESSIONS;
      const checks = { listening: listenSocket !== undefined, draining: ctx.draining, capacity };
      const ready = checks.listening && !checks.draining && capacity < 0.9;
      return json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks });
    }
    if (path === '/metrics') {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      metrics.registry.metrics().then(
        (text) => {
          if (!aborted)
            res.cork(() => res.writeHeader('content-type', metrics.registry.contentType).end(text));
        },
        // A failing collector must not become an unhandled rejection (which would end the relay).
        (err: Error) => {
          log.error({ err: err.message }, 'metrics collection failed');
          if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end());
        },
      );
      return;
    }
    if (path === '/') {
      return json(res, 200, {
        service: 'wingman-relay',
        tunnel: `${ctx.publicOrigin.replace(/^http/, 'ws')}${TUNNEL_PATH}`,
        docs: 'https://github.com/wingman-tunnel/wingman#readme',
      });
    }
    answerError(ctx, res, 'NOT_FOUND');
  }

  function json(res: HttpResponse, status: number, body: unknown): void {
    res.cork(() =>
      res
        .writeStatus(status === 200 ? '200 OK' : '503 Service Unavailable')
        .writeHeader('content-type', 'application/json')
        .writeHeader('cache-control', 'no-store')
        .end(JSON.stringify(body)),
    );
  }

  const maxFrame = config.MAX_FRAME_PAYLOAD_BYTES;
  const app: TemplatedApp = uws.App();
  app
    .ws<SocketData>(TUNNEL_PATH, {
      // One frame plus a batch of small coalesced frames (see shared/src/protocol/frame-batcher.ts).
      maxPayloadLength: maxFrame + 256 * 1024,
      idleTimeout: 60,
      sendPingsAutomatically: true,
      // Uploads pause at TUNNEL_HIGH_WATER_BYTES, so this limit is a safety net: hitting it closes the tunnel rather than dropping frames.
      maxBackpressure: 64 * 1024 * 1024,
      closeOnBackpressureLimit: 1,
      upgrade: onUpgrade,
      open: (ws) => tunnelOpen(ctx, ws, ws.getUserData() as TunnelSocketData),
      message: (ws, message, isBinary) =>
        tunnelMessage(ctx, ws, ws.getUserData() as TunnelSocketData, message, isBinary),
      drain: (ws) => tunnelDrain((ws.getUserData() as TunnelSocketData).session),
      close: (ws, code, message) =>
        tunnelClose(ctx, ws.getUserData() as TunnelSocketData, code, Buffer.from(message).toString()),
    })
    .ws<SocketData>('/*', {
      maxPayloadLength: maxFrame,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      maxBackpressure: 16 * 1024 * 1024,
      upgrade: onUpgrade,
      open: (ws) => {
        const d = ws.getUserData();
        if (d.kind === 'visitor') visitorSocket.open(ctx, ws, d);
      },
      message: (ws, message, isBinary) => {
        const d = ws.getUserData();
        if (d.kind === 'visitor') visitorSocket.message(ctx, ws, d, message, isBinary);
      },
      drain: (ws) => {
        const d = ws.getUserData();
        if (d.kind === 'visitor') visitorSocket.drain(d);
      },
      close: (ws, code, message) => {
        const d = ws.getUserData();
        if (d.kind === 'visitor') visitorSocket.close(ctx, d, code, message);
      },
    })
    .any('/*', onHttp);

  return {
    ctx,
    listen() {
      return new Promise((resolve, reject) => {
        app.listen(config.HOST, config.PORT, (socket) => {
          if (!socket) return reject(new Error(`relay could not listen on ${config.HOST}:${config.PORT}`));
          listenSocket = socket;
          boundPort = uws.us_socket_local_port(socket as never);
          if (!config.PUBLIC_URL && config.PORT === 0) {
            (ctx as { publicOrigin: string }).publicOrigin = `http://${config.HOST}:${boundPort}`;
          }
          resolve(boundPort);
        });
      });
    },
    async shutdown() {
      if (ctx.draining) return;
      ctx.draining = true;
      metrics.draining.set(1);
      // 1. Stop accepting new connections.
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
      // 2. Tell tunnel clients to go away (and come back, to this or another relay).
      const goaway = JSON.stringify({
        type: 'goaway',
        reason: 'relay shutting down',
        reconnectAfterMs: 1000,
      });
      for (const s of registry.sessions.values()) s.tunnel?.send(goaway, false);
      // 3. Drain in-flight HTTP streams up to the deadline.
      const deadline = Date.now() + config.DRAIN_TIMEOUT_MS;
      const inflight = () => {
        let n = 0;
        for (const s of registry.sessions.values())
          for (const st of s.streams.values()) if (st.kind === 'http') n++;
        return n;
      };
      while (inflight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const left = inflight();
      if (left > 0) log.warn({ streams: left }, 'drain deadline reached; cutting remaining streams');
      // 4. Close every session and socket.
      for (const s of [...registry.sessions.values()]) ctx.endSession(s, 'shutdown');
      (app as TemplatedApp & { close?: () => void }).close?.();
      // 5. Flush the event publisher: publish what is buffered, spool the rest to disk.
      await publisher?.close(5000);
      await natsLink?.close();
      log.info({ port: boundPort }, 'relay stopped');
    },
  };
}
