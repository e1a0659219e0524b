/**
 * Header rules for proxying: hop-by-hop removal (RFC 9110 §7.6.1),
 * X-Forwarded-*, and rewriting Location and Set-Cookie paths for
 * path-based (/session/{id}/...) URLs. Pure functions.
 */

import { HOP_BY_HOP_HEADERS } from '@wingman/shared';

export type HeaderPairs = [string, string][];

/** Headers the relay sets itself on responses (uWS writes framing and Date). */
const RESPONSE_MANAGED = new Set(['content-length', 'date']);

/** Names listed in a Connection header are hop-by-hop too. */
function connectionTokens(headers: HeaderPairs): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (const [k, v] of headers) {
    if (k.toLowerCase() !== 'connection') continue;
    out ??= new Set();
    for (const t of v.split(',')) out.add(t.trim().toLowerCase());
  }
  return out;
}

export interface ForwardInfo {
  visitorIp: string;
  proto: 'http' | 'https';
  host: string;
  /** Path prefix stripped from the URL, '' for host-based routing. */
  prefix: string;
  /** When the relay sits behind a trusted proxy, keep its X-Forwarded-For chain. */
  trustProxy: boolean;
}

/** Request headers as the local app should see them. `headers` have lower-case names (uWS gives them so). */
export function forwardRequestHeaders(
  headers: HeaderPairs,
  info: ForwardInfo,
  forWebSocket = false,
): HeaderPairs {
  const extra = connectionTokens(headers);
  const out: HeaderPairs = [];
  let priorXff: string | undefined;
  let priorProto: string | undefined;
  for (const pair of headers) {
    const k = pair[0];
    if (k === 'x-forwarded-for') {
      if (info.trustProxy) priorXff = priorXff ? `${priorXff}, ${pair[1]}` : pair[1];
      continue;
    }
    if (k === 'x-forwarded-proto') {
      if (info.trustProxy) priorProto = pair[1];
      continue;
    }
    if (k === 'x-forwarded-host' || k === 'x-forwarded-prefix') continue;
    if (HOP_BY_HOP_HEADERS.has(k)) continue;
    // The client's WebSocket library makes its own handshake; only the subprotocol offer passes through.
    if (forWebSocket && k.startsWith('sec-websocket-') && k !== 'sec-websocket-protocol') continue;
    if (extra?.has(k)) continue;
    out.push(pair);
  }
  out.push(['x-forwarded-for', priorXff ? `${priorXff}, ${info.visitorIp}` : info.visitorIp]);
  out.push(['x-forwarded-proto', priorProto ?? info.proto]);
  out.push(['x-forwarded-host', info.host]);
  if (info.prefix) out.push(['x-forwarded-prefix', info.prefix]);
  return out;
}

export interface ResponseRewrite {
  /** '/session/{id}' for path-based routing, '' for host-based. */
  prefix: string;
  /** The visitor-facing origin, e.g. https://relay.example.com. */
  publicOrigin: string;
  /** Origins of the local app, e.g. http://localhost:3000, rewritten to publicOrigin + prefix. */
  localOrigins: readonly string[];
}

/** Response headers as the visitor should see them. */
export function rewriteResponseHeaders(headers: HeaderPairs, rw: ResponseRewrite): HeaderPairs {
  const extra = connectionTokens(headers);
  const out: HeaderPairs = [];
  for (const [rawKey, value] of headers) {
    const k = rawKey.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(k) || RESPONSE_MANAGED.has(k) || extra?.has(k)) continue;
    if (k === 'location') out.push([rawKey, rewriteLocation(value, rw)]);
    else if (k === 'set-cookie' && rw.prefix) out.push([rawKey, rewriteCookiePath(value, rw.prefix)]);
    else out.push([rawKey, value]);
  }
  return out;
}

export function rewriteLocation(location: string, rw: ResponseRewrite): string {
  for (const origin of rw.localOrigins) {
    if (location === origin || location.startsWith(`${origin}/`)) {
      return `${rw.publicOrigin}${rw.prefix}${location.slice(origin.length) || '/'}`;
    }
  }
  // Absolute-path reference: keep it under the prefix. Not protocol-relative '//host'.
  if (rw.prefix && location.startsWith('/') && !location.startsWith('//')) return rw.prefix + location;
  return location;
}

/** Prefix an explicit `Path=` attribute; cookies without one default to the request's directory, already under the prefix. */
export function rewriteCookiePath(cookie: string, prefix: string): string {
  return cookie.replace(
    /(;\s*path=)(\/[^;]*)/i,
    (_m, attr: string, path: string) => `${attr}${prefix}${path}`,
  );
}
