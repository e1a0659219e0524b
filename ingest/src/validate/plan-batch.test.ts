import { brotliCompressSync } from 'node:zlib';
import { encodeEnvelope, newEventId } from '@wingman/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRows, planRows } from '../../../test/helpers/rows.ts';
import { retryDelay } from '../consume/worker.ts';
import { frameworkOf } from './enrich.ts';
import {
  type BatchPlan,
  chTime,
  eventTimeWindow,
  MAX_EVENT_AHEAD_MS,
  planBatch,
  type Row,
  type TableName,
  withoutStored,
} from './plan-batch.ts';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const event = (over: Record<string, unknown> = {}) => ({
  v: 1,
  event_id: newEventId(),
  ts: Date.UTC(2026, 10, 27, 12, 0, 0, 123),
  relay_id: 'r1',
  session_id: 's1',
  type: 'websocket.closed',
  duration_ms: 5,
  messages_in: 1,
  messages_out: 2,
  bytes_in: 3,
  bytes_out: 4,
  close_code: 1000,
  ...over,
});
const envelope = (events: unknown[]) => ({ v: 1, relay_id: 'r1', id: 'r1-x-1', events });

/** A table's planned rows read back by column name. */
function rowsOf(plan: BatchPlan, table: TableName): Record<string, unknown>[] | undefined {
  const rows = plan.tables.get(table);
  if (!rows) return undefined;
  const decoded = decodeRows(table, rows.rows.bytes());
  expect(decoded.map((r) => r.event_id)).toEqual(rows.ids);
  return decoded;
}

describe('planBatch', () => {
  it('sends events outside the time window to the DLQ, saying which side, and keeps those inside', () => {
    const now = Date.UTC(2026, 10, 27, 12);
    const day = 24 * 3_600_000;
    const window = eventTimeWindow(30, now);
    expect(window).toEqual({ min: now - 30 * day, max: now + MAX_EVENT_AHEAD_MS });
    const times = [window.min - 1, window.min, now, window.max, window.max + 1, Number.MAX_SAFE_INTEGER];
    const plan = planBatch(
      [{ data: enc(envelope(times.map((ts) => event({ ts })))), mayRepeat: false, dlqId: '7:r1-x-1' }],
      window,
    );
    expect(rowsOf(plan, 'websockets')?.map((r) => r.ts)).toEqual([window.min, now, window.max]);
    expect(plan.dlq.map((d) => d.id)).toEqual(['7:r1-x-1:0', '7:r1-x-1:4', '7:r1-x-1:5']);
    expect(plan.dlq[0]?.reason).toBe(
      'event time out of range: 2026-10-28T11:59:59.999Z is before 2026-10-28T12:00:00.000Z, older than the raw tables keep (RAW_TTL_DAYS)',
    );
    expect(plan.dlq[1]?.reason).toBe(
      "event time out of range: 2026-11-28T12:00:00.001Z is after 2026-11-28T12:00:00.000Z, more than 24 h ahead of ingest's clock",
    );
    expect(plan.dlq[2]?.reason).toMatch(/^event time out of range: 9007199254740991 ms is after/);
    expect(JSON.parse(plan.dlq[0]!.payload as string).ts).toBe(window.min - 1);
    // Without a window (planBatch's default) every time is kept.
    expect(
      planBatch([{ data: enc(envelope(times.map((ts) => event({ ts })))), mayRepeat: false }]).events,
    ).toBe(6);
  });

  it('routes events to their family tables and bad input to the DLQ with reasons', () => {
    const good = event();
    const plan = planBatch([
      { data: enc('{oops'), mayRepeat: false },
      { data: enc(envelope([good, { ...event(), close_code: 'x' }, { type: 'nope' }])), mayRepeat: false },
      {
        data: enc(envelope([event({ type: 'auth.failed', client_ip: '1.2.3.4', reason: 'wrong token' })])),
        mayRepeat: true,
      },
    ]);
    expect(plan.events).toBe(2);
    expect(rowsOf(plan, 'websockets')).toEqual([
      {
        event_id: good.event_id,
        ts: 1795780800123, // 2026-11-27 12:00:00.123 UTC
        relay_id: 'r1',
        session_id: 's1',
        duration_ms: 5,
        messages_in: 1,
        messages_out: 2,
        bytes_in: 3,
        bytes_out: 4,
        close_code: 1000,
      },
    ]);
    expect(rowsOf(plan, 'security')?.[0]).toMatchObject({
      type: 'auth.failed',
      ip: '1.2.3.4',
      reason: 'wrong token',
    });
    expect(plan.dlq.map((d) => d.reason.split(':')[0])).toEqual([
      'bad envelope',
      'invalid event',
      'invalid event',
    ]);
    expect(plan.dlq[1]!.reason).toContain('close_code');
    expect(plan.tables.get('websockets')?.ids).toEqual([good.event_id]);
    // Only events from messages that may repeat are checked against storage.
    expect([...plan.maybeStored.keys()]).toEqual(['security']);
  });

  it('keeps the ids and time range of the events that may be stored, and only of those', () => {
    const at = (ts: number) => event({ ts });
    const [a, b, c, d] = [at(1000), at(5000), at(3000), at(9000)];
    const plan = planBatch([
      { data: enc(envelope([a, d])), mayRepeat: false },
      { data: enc(envelope([b, c])), mayRepeat: true },
    ]);
    expect(plan.maybeStored.get('websockets')).toEqual({
      ids: new Set([b.event_id, c.event_id]),
      minTs: 3000,
      maxTs: 5000,
    });
    expect(plan.tables.get('websockets')?.ids).toEqual([a, d, b, c].map((e) => e.event_id));
    expect(rowsOf(plan, 'websockets')?.map((r) => r.ts)).toEqual([1000, 9000, 5000, 3000]);
  });

  it('reads Brotli-encoded envelopes; bad encodings go to the DLQ as they came, and the rest still plan', () => {
    const [a, b] = [event(), event()];
    const br = encodeEnvelope(enc(envelope([a])), 'br');
    expect(br.contentEncoding).toBe('br');
    const corrupt = new Uint8Array([1, 2, 3, 4, 5]);
    const plan = planBatch([
      { data: br.data as Uint8Array, encoding: 'br', mayRepeat: false },
      { data: corrupt, encoding: 'br', mayRepeat: false },
      { data: enc(envelope([event()])), encoding: 'zstd', mayRepeat: false },
      // Compressed, but its JSON is not an envelope: the DLQ keeps the compressed bytes and says so.
      { data: brotliCompressSync(enc('{"v":1}')), encoding: 'br', mayRepeat: false },
      { data: enc(envelope([b])), encoding: '', mayRepeat: false },
    ]);
    expect(plan.tables.get('websockets')?.ids).toEqual([a.event_id, b.event_id]);
    expect(plan.dlq.map((d) => [d.reason, d.encoding])).toEqual([
      [expect.stringMatching(/^bad envelope: cannot inflate \(br\): /), 'br'],
      ['bad envelope: unknown Content-Encoding "zstd"', 'zstd'],
      [expect.stringMatching(/^bad envelope: (?!cannot inflate)/), 'br'],
    ]);
    expect(plan.dlq[0]!.payload).toBe(corrupt);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.anything(), (bytes, value) => {
        const plan = planBatch([
          { data: bytes, mayRepeat: false },
          { data: bytes, encoding: 'br', mayRepeat: false },
          { data: enc(envelope([value])), mayRepeat: true },
        ]);
        expect(plan.events + plan.dlq.length).toBeGreaterThanOrEqual(2);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('helpers', () => {
  it('withoutStored drops stored ids and repeats within the batch', () => {
    const row = (event_id: string, ip: string) =>
      ({ event_id, ts: 1, type: 'auth.failed', relay_id: 'r', session_id: 's', ip }) as Row;
    const rows = planRows('security', [row('a', '1'), row('b', '2'), row('b', '3'), row('c', '4')]);
    const kept = withoutStored(rows, new Set(['c']));
    expect(kept.ids).toEqual(['a', 'b']);
    expect(decodeRows('security', kept.rows.bytes()).map((r) => [r.event_id, r.ip])).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
    // Nothing to drop: the same rows, not a copy.
    expect(withoutStored(kept, new Set())).toBe(kept);
  });

  it('retryDelay doubles up to the cap', () => {
    expect([1, 2, 3, 10].map((f) => retryDelay(f, 500, 3000))).toEqual([500, 1000, 2000, 3000]);
  });

  it('chTime is Unix seconds with exactly three decimals', () => {
    expect([0, 5, 42, 999, 1000, 1_700_000_000_123].map(chTime)).toEqual([
      '0.000',
      '0.005',
      '0.042',
      '0.999',
      '1.000',
      '1700000000.123',
    ]);
  });

  it.each([
    ['', 'Express', 'Express'],
    ['Next.js', 'Express', 'Next.js'],
    ['nginx/1.25.3', '', 'nginx'],
    ['', 'PHP/8.3', 'PHP'],
    ['Werkzeug/3.0 Python/3.12', '', 'Flask'],
    ['', '', ''],
    ['MyServer', '', ''],
  ])('frameworkOf(server=%s, powered=%s) = %s', (server, powered, expected) => {
    expect(frameworkOf(server, powered)).toBe(expected);
  });
});
