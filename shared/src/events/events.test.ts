import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { requestCompletedEvent } from '../../../test/fixtures/events.ts';
import {
  EVENT_ID_PATTERN,
  eventSchema,
  newEventId,
  normalizePath,
  pathWithoutQuery,
  referrerHost,
  roundMs,
} from './events.ts';

describe('events', () => {
  it('event ids are ULIDs, strictly increasing', () => {
    const ids = Array.from({ length: 1000 }, newEventId);
    for (const id of ids) expect(id).toMatch(EVENT_ID_PATTERN);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(1000);
  });

  it('accepts a well-formed request.completed and rejects wrong fields with a reason', () => {
    const ok = requestCompletedEvent();
    expect(eventSchema.safeParse(ok).success).toBe(true);
    expect(eventSchema.safeParse({ ...ok, status: 'ok' }).success).toBe(false);
    expect(eventSchema.safeParse({ ...ok, type: 'nope' }).success).toBe(false);
    expect(eventSchema.safeParse({ ...ok, event_id: 'x' }).success).toBe(false);
  });

  it.each([
    ['/users/123', '/users/:id'],
    ['/users/123/posts/9?x=1', '/users/:id/posts/:id'],
    ['/o/550e8400-e29b-41d4-a716-446655440000', '/o/:id'],
    ['/c/0123456789abcdef0123', '/c/:id'],
    ['/e/01JD2Z5R9X6N0ZQ8V3WJ6B7K5M#top', '/e/:id'],
    ['/about', '/about'],
    ['/', '/'],
    ['/v2/api', '/v2/api'],
  ])('normalizePath(%s) = %s', (from, to) => {
    expect(normalizePath(from)).toBe(to);
  });

  it('roundMs keeps durations to the microsecond, in short JSON', () => {
    expect(roundMs(2.384567999839783)).toBe(2.385);
    expect(JSON.stringify(roundMs(0.1 + 0.2))).toBe('0.3');
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e7, noNaN: true }), (ms) => {
        const r = roundMs(ms);
        expect(Math.abs(r - ms)).toBeLessThanOrEqual(0.0005 + 1e-9);
        expect(r).toBeGreaterThanOrEqual(0);
        // At most three decimals survive serialisation.
        expect(JSON.stringify(r)).toMatch(/^\d+(\.\d{1,3})?$/);
      }),
    );
  });

  it('normalizePath never throws and never keeps a query', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(normalizePath(`/${s}`)).not.toContain('?');
      }),
    );
  });

  it('normalising what the relay sent equals normalising the raw path, and is idempotent', () => {
    const segment = fc.oneof(
      fc.string(),
      fc.nat().map(String),
      fc.uuid(),
      fc.constantFrom('users', 'a?b=1', 'x#y'),
    );
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 300 }), (segments) => {
        const raw = `/${segments.join('/')}`;
        const sent = pathWithoutQuery(raw);
        expect(sent.length).toBeLessThanOrEqual(1024);
        expect(sent).not.toMatch(/[?#]/);
        expect(normalizePath(sent)).toBe(normalizePath(raw));
        expect(normalizePath(normalizePath(raw))).toBe(normalizePath(raw));
      }),
    );
  });

  it('referrerHost', () => {
    expect(referrerHost('https://news.example.com/a?b')).toBe('news.example.com');
    expect(referrerHost('android-app://com.x')).toBe('com.x');
    expect(referrerHost(undefined)).toBe('');
    expect(referrerHost('nonsense')).toBe('');
  });
});
