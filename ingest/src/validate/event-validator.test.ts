import { eventSchema, newEventId } from '@wingman/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { requestCompletedEvent } from '../../../test/fixtures/events.ts';
import { isEvent } from './event-validator.ts';

const stamps = () => ({
  v: 1,
  event_id: newEventId(),
  ts: Date.now(),
  relay_id: 'relay-1',
  session_id: 's1',
});

/** One valid event of every type in the union. */
const VALID: Record<string, unknown>[] = [
  {
    type: 'session.created',
    port: 3000,
    requested_subdomain: null,
    client_version: 'wingman/0.1.0',
    url_kind: 'both',
    api_key_id: 'key1',
    client_ip: '127.0.0.1',
  },
  {
    type: 'session.closed',
    reason: 'client_closed',
    duration_ms: 5.5,
    requests: 3,
    bytes_in: 1,
    bytes_out: 2,
  },
  { type: 'session.expired', duration_ms: 1 },
  { type: 'connection.opened', client_ip: '::1' },
  { type: 'connection.closed', code: 1000, reason: 'bye', duration_ms: 2 },
  { type: 'connection.resumed', client_ip: '::1' },
  { type: 'connection.attempt', transport: 'relay', success: true, reason: '', client_ip: '::1' },
  requestCompletedEvent(),
  {
    type: 'websocket.closed',
    duration_ms: 3,
    messages_in: 1,
    messages_out: 2,
    bytes_in: 3,
    bytes_out: 4,
    close_code: 1000,
  },
  { type: 'auth.failed', client_ip: '127.0.0.1', reason: 'bad token' },
  { type: 'rate.limited', key: 'ip:127.0.0.1', limit: '100/min', visitor_ip: '127.0.0.1' },
  { type: 'blocked', visitor_ip: '127.0.0.1', reason: 'abuse' },
].map((e) => ({ ...stamps(), ...e }));

const KEYS = [...new Set(VALID.flatMap((e) => Object.keys(e)))];

/** Values near the schema's edges: lengths at and past each max (astral characters: one code point, two UTF-16 units), bounds of numbers, wrong types. */
const edgy = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(
    0,
    -1,
    1,
    1.5,
    99,
    100,
    599,
    600,
    4999,
    5000,
    65535,
    65536,
    Number.MAX_SAFE_INTEGER,
    2 ** 53,
    null,
    true,
    '',
  ),
  fc.constantFrom(...VALID.map((e) => e.type), 'path', 'host', 'both', 'relay', 'p2p', 'expired', 'shutdown'),
  fc
    .tuple(
      fc.constantFrom(16, 26, 31, 32, 33, 63, 64, 65, 128, 129, 256, 257, 512, 513, 1024, 1025),
      fc.boolean(),
    )
    .map(([n, astral]) => (astral ? '😀'.repeat(Math.ceil(n / 2)) : 'a'.repeat(n))),
  fc.constant(newEventId()),
);

/** A valid event with up to four fields replaced, deleted or added. */
const mutated = fc
  .tuple(
    fc.constantFrom(...VALID),
    fc.array(fc.tuple(fc.oneof(fc.constantFrom(...KEYS), fc.string()), fc.option(edgy, { nil: undefined })), {
      maxLength: 4,
    }),
  )
  .map(([base, changes]) => {
    const e: Record<string, unknown> = { ...base };
    for (const [k, v] of changes) {
      if (v === undefined) delete e[k];
      else e[k] = v;
    }
    return e;
  });

describe('compiled event validator (Ajv from the zod schema)', () => {
  it('accepts every valid event type', () => {
    for (const e of VALID) {
      expect(eventSchema.safeParse(e).success).toBe(true);
      expect(isEvent(e)).toBe(true);
    }
  });

  it('gives the same verdict as zod for mutated events and arbitrary JSON', () => {
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(
        fc.oneof({ weight: 4, arbitrary: mutated }, { weight: 1, arbitrary: fc.jsonValue() }),
        (x) => {
          const zodSays = eventSchema.safeParse(x).success;
          expect(isEvent(x)).toBe(zodSays);
          if (zodSays) accepted++;
          else rejected++;
        },
      ),
      { numRuns: 3000 },
    );
    // Both verdicts were exercised, not just one.
    expect(accepted).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });
});
