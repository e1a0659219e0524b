import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { routeRequest, subdomainOf } from './route.ts';

describe('routeRequest', () => {
  it.each([
    [
      'relay.test',
      '/session/abcdefgh/x/y',
      'q=1',
      {
        kind: 'session',
        sessionId: 'abcdefgh',
        hostKind: 'path',
        path: '/x/y?q=1',
        prefix: '/session/abcdefgh',
      },
    ],
    [
      'relay.test',
      '/session/abcdefgh/',
      '',
      { kind: 'session', sessionId: 'abcdefgh', hostKind: 'path', path: '/', prefix: '/session/abcdefgh' },
    ],
    ['relay.test', '/session/abcdefgh', 'a=b', { kind: 'add-slash', location: '/session/abcdefgh/?a=b' }],
    ['relay.test', '/session/abc/x', '', { kind: 'bad-id', hostKind: 'path' }],
    ['relay.test', '/session/abc-defgh/x', '', { kind: 'bad-id', hostKind: 'path' }],
    ['relay.test', '/session/', '', { kind: 'bad-id', hostKind: 'path' }],
    [
      'abcdefgh.relay.test',
      '/x',
      'y=1',
      { kind: 'session', sessionId: 'abcdefgh', hostKind: 'host', path: '/x?y=1', prefix: '' },
    ],
    [
      'ABCDEFGH.Relay.Test:8080',
      '/',
      '',
      { kind: 'session', sessionId: 'abcdefgh', hostKind: 'host', path: '/', prefix: '' },
    ],
    ['bad_id.relay.test', '/', '', { kind: 'bad-id', hostKind: 'host' }],
    ['a.b.relay.test', '/health', '', { kind: 'relay', path: '/health' }],
    ['relay.test', '/health', '', { kind: 'relay', path: '/health' }],
    ['[::1]:8080', '/metrics', '', { kind: 'relay', path: '/metrics' }],
  ])('%s %s?%s', (host, url, query, expected) => {
    expect(routeRequest(host, url, query, 'relay.test')).toEqual(expected);
  });

  it('never throws and only routes to ids matching the pattern', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), (host, url, query) => {
        const r = routeRequest(host, `/${url}`, query, 'relay.test');
        if (r.kind === 'session') expect(r.sessionId).toMatch(/^[a-zA-Z0-9]{8,32}$/);
      }),
    );
  });
});

describe('subdomainOf', () => {
  it('strips ports but not IPv6 literals', () => {
    expect(subdomainOf('abc.example.com:443', 'example.com')).toBe('abc');
    expect(subdomainOf('example.com', 'example.com')).toBeUndefined();
    expect(subdomainOf('[::1]', 'example.com')).toBeUndefined();
  });
});
