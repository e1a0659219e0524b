import { describe, expect, it } from 'vitest';
import {
  forwardRequestHeaders,
  rewriteCookiePath,
  rewriteLocation,
  rewriteResponseHeaders,
} from './rewrite.ts';

const info = {
  visitorIp: '203.0.113.9',
  proto: 'https' as const,
  host: 'abc.example.com',
  prefix: '',
  trustProxy: false,
};

describe('forwardRequestHeaders', () => {
  it('drops hop-by-hop headers, including those named in Connection, and sets X-Forwarded-*', () => {
    const out = forwardRequestHeaders(
      [
        ['host', 'abc.example.com'],
        ['connection', 'keep-alive, x-secret'],
        ['x-secret', '1'],
        ['keep-alive', 'timeout=5'],
        ['transfer-encoding', 'chunked'],
        ['te', 'trailers'],
        ['x-forwarded-for', '10.0.0.1'],
        ['cookie', 'a=1'],
        ['cookie', 'b=2'],
      ],
      info,
    );
    expect(out).toEqual([
      ['host', 'abc.example.com'],
      ['cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['x-forwarded-for', '203.0.113.9'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'abc.example.com'],
    ]);
  });

  it('extends a trusted proxy chain and adds the prefix', () => {
    const out = forwardRequestHeaders(
      [
        ['x-forwarded-for', '198.51.100.1'],
        ['x-forwarded-proto', 'https'],
      ],
      { ...info, trustProxy: true, proto: 'http', prefix: '/session/abcdefgh' },
    );
    expect(out).toEqual([
      ['x-forwarded-for', '198.51.100.1, 203.0.113.9'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'abc.example.com'],
      ['x-forwarded-prefix', '/session/abcdefgh'],
    ]);
  });

  it('keeps only the subprotocol offer of a WebSocket handshake', () => {
    const out = forwardRequestHeaders(
      [
        ['upgrade', 'websocket'],
        ['sec-websocket-key', 'k'],
        ['sec-websocket-version', '13'],
        ['sec-websocket-protocol', 'chat'],
        ['origin', 'https://x'],
      ],
      info,
      true,
    );
    expect(out.slice(0, 2)).toEqual([
      ['sec-websocket-protocol', 'chat'],
      ['origin', 'https://x'],
    ]);
  });
});

describe('response rewriting', () => {
  const rw = {
    prefix: '/session/abcdefgh',
    publicOrigin: 'https://relay.test',
    localOrigins: ['http://localhost:3000'],
  };

  it.each([
    ['/login', '/session/abcdefgh/login'],
    ['//cdn.example.com/x', '//cdn.example.com/x'],
    ['http://localhost:3000/a?b=1', 'https://relay.test/session/abcdefgh/a?b=1'],
    ['http://localhost:3000', 'https://relay.test/session/abcdefgh/'],
    ['https://other.example.com/', 'https://other.example.com/'],
    ['relative/path', 'relative/path'],
  ])('Location %s -> %s', (from, to) => {
    expect(rewriteLocation(from, rw)).toBe(to);
  });

  it('leaves Location alone for host-based routing except local origins', () => {
    const host = { ...rw, prefix: '', publicOrigin: 'https://abcdefgh.relay.test' };
    expect(rewriteLocation('/login', host)).toBe('/login');
    expect(rewriteLocation('http://localhost:3000/x', host)).toBe('https://abcdefgh.relay.test/x');
  });

  it('prefixes explicit cookie paths only', () => {
    expect(rewriteCookiePath('a=1; Path=/; HttpOnly', '/session/abcdefgh')).toBe(
      'a=1; Path=/session/abcdefgh/; HttpOnly',
    );
    expect(rewriteCookiePath('a=1; path=/api', '/p')).toBe('a=1; path=/p/api');
    expect(rewriteCookiePath('a=1; Secure', '/p')).toBe('a=1; Secure');
  });

  it('drops framing and hop-by-hop response headers', () => {
    const out = rewriteResponseHeaders(
      [
        ['Content-Length', '5'],
        ['Transfer-Encoding', 'chunked'],
        ['Connection', 'close'],
        ['Date', 'x'],
        ['Content-Type', 'text/plain'],
        ['Set-Cookie', 'a=1; Path=/'],
      ],
      rw,
    );
    expect(out).toEqual([
      ['Content-Type', 'text/plain'],
      ['Set-Cookie', 'a=1; Path=/session/abcdefgh/'],
    ]);
  });
});
