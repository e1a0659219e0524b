import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { type EventInput, newEventId, type WingmanEvent } from '@wingman/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertRows } from '../../../test/helpers/rows.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { loadIngestConfig } from '../config.ts';
import { runMigrations } from '../sink/migrate.ts';
import { createWarehouse } from '../sink/warehouse.ts';
import { TABLE_SCHEMA, type TableName, toRow } from '../validate/plan-batch.ts';
import { answerSqlRequest, QUERIES_DIR, runSql, sqlRequestSchema } from './sql-service.ts';

/**
 * Real embedded chDB (this test file runs in its own process): the schema,
 * the rollup views, every insight and abuse query, on a seeded data set.
 */
let ch: ClickHouseClient;
// Half past the hour before last: recent enough for every table's TTL (the IP rollup keeps 7 days).
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000 + 30 * 60_000;
const fmt = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
const RANGE = { from: fmt(T0 - 86_400_000), to: fmt(T0 + 86_400_000) };
const MINUTE = fmt(T0);
const HOUR = fmt(T0 - 30 * 60_000);

function ev(input: EventInput, offsetMs: number): WingmanEvent {
  return {
    ...input,
    v: 1,
    event_id: newEventId(),
    ts: T0 + offsetMs,
    relay_id: 'relay-test',
  } as WingmanEvent;
}

const request = (
  session: string,
  i: number,
  over: Partial<EventInput<'request.completed'>>,
): EventInput<'request.completed'> => ({
  type: 'request.completed',
  session_id: session,
  method: 'GET',
  host_kind: 'path',
  status: 200,
  duration_ms: i,
  ttfb_ms: i,
  bytes_in: 0,
  bytes_out: 100,
  path: '/',
  visitor_ip: '8.8.8.8',
  user_agent: 'seed',
  referrer_host: '',
  server: '',
  powered_by: '',
  error_code: '',
  ...over,
});

function seed(): WingmanEvent[] {
  const out: WingmanEvent[] = [];
  const created = (id: string, ip: string, key: string | null, t: number) =>
    out.push(
      ev(
        {
          type: 'session.created',
          session_id: id,
          port: 3000,
          requested_subdomain: null,
          client_version: 'wingman/0.1.0',
          url_kind: 'both',
          api_key_id: key,
          client_ip: ip,
        },
        t,
      ),
    );
  created('s1', '203.0.113.1', null, 0);
  created('s2', '203.0.113.1', 'key_2', 1000);
  created('s3', '198.51.100.7', null, 2000);
  for (const [id, d] of [
    ['s1', 1000],
    ['s3', 3000],
  ] as const) {
    out.push(
      ev(
        {
          type: 'session.closed',
          session_id: id,
          reason: 'client_closed',
          duration_ms: d,
          requests: 0,
          bytes_in: 0,
          bytes_out: 0,
        },
        40_000,
      ),
    );
  }
  for (const [i, success] of [true, true, true, false].entries()) {
    out.push(
      ev(
        {
          type: 'connection.attempt',
          session_id: 's1',
          transport: 'p2p',
          success,
          reason: '',
          client_ip: '203.0.113.1',
        },
        3000 + i,
      ),
    );
  }
  out.push(
    ev(
      {
        type: 'connection.attempt',
        session_id: 's1',
        transport: 'relay',
        success: false,
        reason: 'x',
        client_ip: '203.0.113.1',
      },
      3100,
    ),
  );
  // s1: 10 requests from the US, Express, durations 1..10 ms, one 404 and one 500.
  for (let i = 1; i <= 10; i++) {
    const status = i === 9 ? 404 : i === 10 ? 500 : 200;
    out.push(
      ev(
        request('s1', i, { status, path: i <= 6 ? '/users/:id' : '/about', powered_by: 'Express' }),
        5000 + i * 100,
      ),
    );
  }
  // s2: 5 requests from GB, nginx, durations 11..15 ms, 2000 bytes each.
  for (let i = 11; i <= 15; i++) {
    out.push(
      ev(
        request('s2', i, { visitor_ip: '81.2.69.142', server: 'nginx/1.25', bytes_out: 2000 }),
        5000 + i * 100,
      ),
    );
  }
  return out;
}

/** Insert the way the worker does: rows per family table, through the materialized views. */
async function insertEvents(events: WingmanEvent[]): Promise<void> {
  const byTable = new Map<TableName, ReturnType<typeof toRow>['row'][]>();
  for (const e of events) {
    const { table, row } = toRow(e);
    byTable.set(table, [...(byTable.get(table) ?? []), row]);
  }
  for (const [table, rows] of byTable) await insertRows(ch, table, rows);
}

async function named(query: string, params: Record<string, unknown> = {}) {
  const r = await runSql(ch, { query, params: { ...RANGE, ...params } });
  if (!r.ok) throw new Error(`${query}: ${r.error}`);
  return r.rows.map((row) =>
    Object.fromEntries(
      Object.entries(row).map(([k, v]) => [
        k,
        typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v,
      ]),
    ),
  );
}

beforeAll(async () => {
  const config = loadIngestConfig({ CHDB_PATH: tempDir('wingman-chdb-q-') });
  ch = await createWarehouse(config);
  await runMigrations(ch, { rawTtlDays: 30 });
  await insertEvents(seed());
});
afterAll(async () => {
  await ch?.close();
});

describe('migrations', () => {
  it('the columns ingest writes exist in every raw table, with the types and defaults it writes them with', async () => {
    for (const [table, cols] of Object.entries(TABLE_SCHEMA)) {
      const r = await ch.query({
        query:
          'SELECT name, type, default_expression AS d FROM system.columns WHERE database = currentDatabase() AND table = {t:String}',
        query_params: { t: table },
        format: 'JSONEachRow',
      });
      const live = new Map(
        (await r.json<{ name: string; type: string; d: string }>()).map((c) => [c.name, c]),
      );
      // RowBinary sends a LowCardinality(String) as a String. A column without a DEFAULT, or with
      // the type's zero, is written as that zero when a row lacks it; any other DEFAULT is named.
      const zero = (type: string) => (type === 'String' ? "''" : '0');
      const got = cols.map((c) => {
        const l = live.get(c.name);
        const type = l?.type.replace(/^LowCardinality\((.*)\)$/, '$1');
        return { name: c.name, type, d: l?.d === '' || l?.d === zero(c.type) ? undefined : l?.d };
      });
      const want = cols.map((c) => ({
        name: c.name,
        type: c.type,
        d:
          c.default === undefined
            ? undefined
            : typeof c.default === 'string'
              ? `'${c.default}'`
              : String(c.default),
      }));
      expect(got).toEqual(want);
    }
  });

  it('applying them twice is a no-op', async () => {
    const snapshot = async () => {
      const r = await ch.query({
        query:
          "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() AND name != 'schema_migrations' ORDER BY name",
        format: 'JSONEachRow',
      });
      return r.json();
    };
    const before = await snapshot();
    expect(before.length).toBeGreaterThanOrEqual(11);
    expect(await runMigrations(ch, { rawTtlDays: 30 })).toEqual([]);
    expect(await snapshot()).toEqual(before);
    const applied = await ch.query({
      query: 'SELECT count() AS c FROM schema_migrations',
      format: 'JSONEachRow',
    });
    expect(Number((await applied.json<{ c: string }>())[0]!.c)).toBe(2);
  });

  it('applies RAW_TTL_DAYS to the raw tables', async () => {
    await runMigrations(ch, { rawTtlDays: 7 });
    const r = await ch.query({
      query: "SELECT engine_full FROM system.tables WHERE name = 'requests' AND database = currentDatabase()",
      format: 'JSONEachRow',
    });
    expect((await r.json<{ engine_full: string }>())[0]!.engine_full).toContain('toIntervalDay(7)');
    await runMigrations(ch, { rawTtlDays: 30 });
  });
});

describe('insight queries on a seeded data set', () => {
  it('every query file is covered here', () => {
    const files = ['insights', 'abuse'].flatMap((d) =>
      readdirSync(join(QUERIES_DIR, d)).map((f) => `${d}/${f.replace('.sql', '')}`),
    );
    expect(files.sort()).toEqual([...COVERED].sort());
  });

  it('insights/total_sessions', async () => {
    expect(await named('insights/total_sessions')).toEqual([{ total_sessions: 3 }]);
  });
  it('insights/p2p_success_rate counts only p2p attempts', async () => {
    expect(await named('insights/p2p_success_rate')).toEqual([
      { successes: 3, attempts: 4, p2p_success_rate: 0.75 },
    ]);
  });
  it('insights/avg_session_duration', async () => {
    expect(await named('insights/avg_session_duration')).toEqual([
      { sessions_closed: 2, avg_duration_ms: 2000, median_duration_ms: 2000 },
    ]);
  });
  it('insights/popular_frameworks', async () => {
    expect(await named('insights/popular_frameworks')).toEqual([
      { framework: 'Express', sessions: 1, requests: 10 },
      { framework: 'nginx', sessions: 1, requests: 5 },
    ]);
  });
  it('insights/peak_usage_hours', async () => {
    expect(await named('insights/peak_usage_hours')).toEqual([
      { hour_utc: new Date(T0).getUTCHours(), requests: 15 },
    ]);
  });
  it('insights/error_rate', async () => {
    expect(await named('insights/error_rate')).toEqual([
      { requests: 15, errors_4xx: 1, errors_5xx: 1, error_rate: 0.1333 },
    ]);
  });
  it('insights/latency_percentiles', async () => {
    const [q] = await named('insights/latency_percentiles');
    // Durations 1..15 ms; ClickHouse interpolates between neighbouring values.
    expect(q!.p50_ms).toBeCloseTo(8, 1);
    expect(q!.p95_ms).toBeCloseTo(14.3, 1);
    expect(q!.p99_ms).toBeCloseTo(14.86, 1);
  });
  it('insights/top_paths', async () => {
    expect(await named('insights/top_paths')).toEqual([
      { path: '/users/:id', requests: 6, errors: 0, avg_ms: 3.5 },
      { path: '/', requests: 5, errors: 0, avg_ms: 13 },
      { path: '/about', requests: 4, errors: 2, avg_ms: 8.5 },
    ]);
  });
  it('insights/bandwidth_per_session', async () => {
    expect(await named('insights/bandwidth_per_session')).toEqual([
      { session_id: 's2', bytes_in: 0, bytes_out: 10000, bytes_total: 10000 },
      { session_id: 's1', bytes_in: 0, bytes_out: 1000, bytes_total: 1000 },
    ]);
  });
  it('insights/geographic_distribution (GeoIP from the shipped database)', async () => {
    expect(await named('insights/geographic_distribution')).toEqual([
      { country: 'US', requests: 10, bytes_out: 1000 },
      { country: 'GB', requests: 5, bytes_out: 10000 },
    ]);
  });
  it('abuse/request_flood_by_ip', async () => {
    expect(await named('abuse/request_flood_by_ip', { max_per_minute: 6 })).toEqual([
      { visitor_ip: '8.8.8.8', minute: MINUTE, minute_requests: 10 },
    ]);
  });
  it('abuse/bandwidth_per_session_hour names the API key', async () => {
    expect(await named('abuse/bandwidth_per_session_hour', { max_bytes: 5000 })).toEqual([
      { session_id: 's2', api_key_id: 'key_2', hour: HOUR, bytes: 10000 },
    ]);
  });
  it('abuse/session_creation_by_ip', async () => {
    expect(await named('abuse/session_creation_by_ip', { max_per_hour: 1 })).toEqual([
      { client_ip: '203.0.113.1', hour: HOUR, sessions: 2 },
    ]);
  });
  it('abuse/error_flood', async () => {
    expect(await named('abuse/error_flood', { min_errors: 2, max_ratio: 0.1 })).toEqual([
      { session_id: 's1', minute: MINUTE, requests: 10, errors: 2, error_ratio: 0.2 },
    ]);
  });
  it('a time range outside the data returns nothing', async () => {
    const r = await runSql(ch, {
      query: 'insights/total_sessions',
      params: { from: '2020-01-01 00:00:00', to: '2020-01-02 00:00:00' },
    });
    expect(r.ok && Number(r.rows[0]!.total_sessions)).toBe(0);
  });
});

describe('read-only SQL service', () => {
  it.each([
    ['DROP TABLE requests', /only/],
    ['WITH 1 AS x INSERT INTO requests SELECT * FROM requests', /only read queries/],
    ['SELECT 1; DROP TABLE requests', /one statement/],
    ["SELECT * FROM file('/etc/passwd')", /outside the warehouse/],
    ["SELECT 1 INTO OUTFILE '/tmp/x'", /OUTFILE/],
  ])('refuses %s', async (sql, why) => {
    const r = await runSql(ch, { sql });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(why);
  });

  it('answers an unknown named query with an error (it used to reject, unanswered)', async () => {
    const r = await answerSqlRequest(ch, Buffer.from(JSON.stringify({ query: 'insights/no_such_query' })));
    expect(r).toEqual({ ok: false, error: 'no such query: insights/no_such_query' });
  });

  it('fuzz: any request bytes get a reply, never a rejection; malformed ones a bad-request error', async () => {
    const sqlish = fc
      .array(
        fc.constantFrom(
          'SELECT',
          'count()',
          'FROM',
          'requests',
          'sessions',
          'WHERE',
          '{x:UInt8}',
          ';',
          'DROP',
          'INSERT',
          "file('/etc/passwd')",
          'WITH',
          '1',
          '--',
          '(',
          ')',
          "'",
          'system.tables',
        ),
        { maxLength: 8 },
      )
      .map((words) => words.join(' '));
    const params = fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })), {
      nil: undefined,
    });
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
      fc
        .record({ sql: fc.oneof(sqlish, fc.string({ maxLength: 40 })), params })
        .map((r) => Buffer.from(JSON.stringify(r))),
      fc
        .record({ query: fc.stringMatching(/^(insights|abuse)\/[a-z0-9_]{1,24}$/), params })
        .map((r) => Buffer.from(JSON.stringify(r))),
    );
    await fc.assert(
      fc.asyncProperty(payload, async (bytes) => {
        const reply = await answerSqlRequest(ch, bytes);
        expect(typeof reply.ok).toBe('boolean');
        if (!reply.ok) expect(reply.error.length).toBeGreaterThan(0);
        let valid = false;
        try {
          valid = sqlRequestSchema.safeParse(JSON.parse(bytes.toString())).success;
        } catch {}
        if (!valid)
          expect(reply).toMatchObject({ ok: false, error: expect.stringMatching(/^bad request: /) });
      }),
      { numRuns: 300 },
    );
    // The session still answers, and the data is untouched.
    const c = await runSql(ch, { sql: 'SELECT count() AS c FROM requests' });
    expect(c.ok && Number(c.rows[0]!.c)).toBeGreaterThan(0);
  });

  it('answers a bad query with the error, and the worker session stays writable', async () => {
    const r = await runSql(ch, { sql: 'SELECT no_such_column FROM requests' });
    expect(!r.ok && r.error).toMatch(/no_such_column/);
    await insertEvents([ev(request('s9', 1, {}), 50_000)]);
    const c = await runSql(ch, { sql: "SELECT count() AS c FROM requests WHERE session_id = 's9'" });
    expect(c.ok && Number(c.rows[0]!.c)).toBe(1);
  });
});

const COVERED = [
  'insights/total_sessions',
  'insights/p2p_success_rate',
  'insights/avg_session_duration',
  'insights/popular_frameworks',
  'insights/peak_usage_hours',
  'insights/error_rate',
  'insights/latency_percentiles',
  'insights/top_paths',
  'insights/bandwidth_per_session',
  'insights/geographic_distribution',
  'abuse/request_flood_by_ip',
  'abuse/bandwidth_per_session_hour',
  'abuse/session_creation_by_ip',
  'abuse/error_flood',
];
