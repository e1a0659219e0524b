import { SESSION_ID_PATTERN } from '@wingman/shared';

/** Where a visitor request goes. Pure: host and URL in, decision out. */
export type Route =
  | { kind: 'session'; sessionId: string; hostKind: 'path' | 'host'; path: string; prefix: string }
  | { kind: 'bad-id'; hostKind: 'path' | 'host' }
  | { kind: 'add-slash'; location: string }
  | { kind: 'relay'; path: string };

const SESSION_PREFIX = '/session/';

/**
 * Route by host first ({id}.{relayDomain}), then by path (/session/{id}/...).
 * `url` is the path without the query; `query` is the raw query string without '?'.
 */
export function routeRequest(host: string, url: string, query: string, relayDomain: string): Route {
  const sub = subdomainOf(host, relayDomain);
  const withQuery = query ? `${url}?${query}` : url;
  if (sub !== undefined) {
    if (!SESSION_ID_PATTERN.test(sub)) return { kind: 'bad-id', hostKind: 'host' };
    return { kind: 'session', sessionId: sub, hostKind: 'host', path: withQuery, prefix: '' };
  }
  if (!url.startsWith(SESSION_PREFIX)) return { kind: 'relay', path: url };
  const rest = url.slice(SESSION_PREFIX.length);
  const slash = rest.indexOf('/');
  const id = slash < 0 ? rest : rest.slice(0, slash);
  if (!SESSION_ID_PATTERN.test(id)) return { kind: 'bad-id', hostKind: 'path' };
  // Without the trailing slash, relative links in the app would resolve outside the prefix.
  if (slash < 0) return { kind: 'add-slash', location: `${url}/${query ? `?${query}` : ''}` };
  const path = rest.slice(slash);
  return {
    kind: 'session',
    sessionId: id,
    hostKind: 'path',
    path: query ? `${path}?${query}` : path,
    prefix: SESSION_PREFIX + id,
  };
}

/** The session label of `host` when it is exactly one label under relayDomain; else undefined. */
export function subdomainOf(host: string, relayDomain: string): string | undefined {
  const colon = host.lastIndexOf(':');
  // Strip a port, but not the colons of a bare IPv6 literal.
  const name = (
    colon > 0 && !host.endsWith(']') && host.indexOf(':') === colon ? host.slice(0, colon) : host
  ).toLowerCase();
  const suffix = `.${relayDomain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  if (label.length === 0 || label.includes('.')) return undefined;
  return label;
}
