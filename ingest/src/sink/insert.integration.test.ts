import { readdirSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import { newEventId } from '@wingman/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestCompletedEvent } from '../../../test/fixtures/events.ts';
import { decodeRows, encodeRows, insertRows } from '../../../test/helpers/rows.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { loadIngestConfig } from '../config.ts';
import { isEvent } from '../validate/event-validator.ts';
import { type Row, TABLE_COLUMNS, TABLE_SCHEMA, toRow } from '../validate/plan-batch.ts';
import { runMigrations } from './migrate.ts';
import { createWarehouse, insertEncoded, prepareStaging } from './warehouse.ts';

/** Real embedded chDB (this file runs in its own process): rows go in as the worker sends them. */
let ch: ClickHouseClient;
let chdbDir: string;
beforeAll(async () => {
  chdbDir = tempDir('wingman-insert-');
  ch = await createWarehouse(loadIngestConfig({ CHDB_PATH: chdbDir }));
  await runMigrations(ch, { rawTtlDays: 30 });
});
afterAll(async () => {
  await ch?.close();
});

/** The row the worker inserts for an event, which must be valid. */
function rowOf(e: Record<string, unknown>): Row {
  if (!isEvent(e)) throw new Error(`not a valid event: ${JSON.stringify(e)}`);
  return toRow(e).row;
}

const stored = async (ids: string[]) => {
  const r = await ch.query({
    query:
      'SELECT event_id, toUnixTimestamp64Milli(ts) AS ts, path, user_agent, referrer_host, bytes_out, duration_ms FROM requests WHERE event_id IN {ids:Array(String)}',
    query_params: { ids },
    format: 'JSONEachRow',
  });
  return r.json<Record<string, unknown>>();
};

describe('encoded inserts into chDB', () => {
  it('every string, time and 64-bit count comes back exactly: quotes, backslashes, control characters, any code point', async () => {
    // Any code point, with the characters an encoder must escape made common.
    const special = fc.constantFrom(
      '\\',
      '"',
      '\t',
      '\n',
      '\r',
      '\u0000',
      '\u001f',
      '/',
      '\u2028',
      'é',
      '😀',
    );
    const unit = fc.oneof(special, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
    const text = fc.string({ unit, maxLength: 40 });
    // Up to the schema's 512 for user agents: past 127 UTF-8 bytes, a string's length takes two bytes.
    const long = fc.string({ unit, minLength: 30, maxLength: 512 });
    await fc.assert(
      fc.asyncProperty(
        // Times within a day of now (the raw tables' TTL drops old rows); byte counts up to 2^53, so
        // both halves of each 64-bit value are written.
        fc.array(
          fc.record({
            path: text,
            ua: fc.oneof(text, long),
            ref: text,
            bytes: fc.maxSafeNat(),
            ts: fc.integer({ min: Date.now() - 86_400_000, max: Date.now() + 86_400_000 }),
          }),
          {
            minLength: 1,
            maxLength: 20,
          },
        ),
        async (inputs) => {
          const events = inputs.map((i) =>
            requestCompletedEvent({
              path: `/${i.path}`,
              user_agent: i.ua,
              referrer_host: i.ref,
              bytes_out: i.bytes,
              ts: i.ts,
            }),
          );
          const rows = events.map(rowOf);
          await insertRows(ch, 'requests', rows);
          const back = new Map((await stored(rows.map((r) => r.event_id))).map((r) => [r.event_id, r]));
          for (const r of rows) {
            // 64-bit integers may come back as numbers or as strings: compare values.
            const got = back.get(r.event_id);
            expect({ ...got, ts: Number(got?.ts), bytes_out: Number(got?.bytes_out) }).toEqual({
              event_id: r.event_id,
              ts: r.ts,
              path: r.path,
              user_agent: r.user_agent,
              referrer_host: r.referrer_host,
              bytes_out: r.bytes_out,
              duration_ms: r.duration_ms,
            });
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('RowBinary rows read back the same by ClickHouse and by the format as documented, defaults included', async () => {
    const e = requestCompletedEvent({ path: '/a\tb', user_agent: `say "hi"\n${'é'.repeat(200)}` });
    const row = rowOf(e);
    const bytes = encodeRows('requests', [row, row]);
    const decoded = decodeRows('requests', bytes);
    expect(decoded).toHaveLength(2);
    expect(decoded[0]).toEqual(decoded[1]);
    expect(Object.keys(decoded[0]!)).toEqual(TABLE_COLUMNS.requests);
    expect([decoded[0]!.event_id, decoded[0]!.ts, decoded[0]!.path, decoded[0]!.user_agent]).toEqual([
      row.event_id,
      row.ts,
      '/a\tb',
      row.user_agent,
    ]);
    // A value the row lacks is written as its column's default: 'relay' and 1 here, not '' and 0.
    const opened = rowOf({
      v: 1,
      event_id: newEventId(),
      ts: Date.now(),
      relay_id: 'test-relay',
      session_id: 's1',
      type: 'connection.opened',
      client_ip: '127.0.0.1',
    });
    expect(decodeRows('connections', encodeRows('connections', [opened]))[0]).toMatchObject({
      transport: 'relay',
      success: 1,
      code: 0,
    });
    // Past 16383 bytes a length takes three bytes (no event field is that long; the format allows it).
    const huge = { ...rowOf(requestCompletedEvent()), user_agent: 'ü'.repeat(20_000) };
    await insertRows(ch, 'requests', [huge]);
    expect((await stored([huge.event_id]))[0]?.user_agent).toBe(huge.user_agent);
    await insertRows(ch, 'connections', [opened]);
    const r = await ch.query({
      query: 'SELECT transport, success, code FROM connections WHERE event_id = {id:String}',
      query_params: { id: opened.event_id },
      format: 'JSONEachRow',
    });
    expect(await r.json()).toEqual([{ transport: 'relay', success: 1, code: 0 }]);
  });

  it('a batch the table cannot read rejects as a whole: nothing of it is stored', async () => {
    const rows = [rowOf(requestCompletedEvent()), rowOf(requestCompletedEvent())];
    const bytes = encodeRows('requests', rows);
    const cut = {
      table: 'requests',
      columns: TABLE_SCHEMA.requests,
      payload: bytes.subarray(0, bytes.length - 3),
    };
    await expect(insertEncoded(ch, cut)).rejects.toThrow(/Cannot read all data/);
    expect(await stored(rows.map((r) => r.event_id))).toEqual([]);
  });

  it('leaves no staging files behind, after a good insert or a failed one', async () => {
    const staging = join(chdbDir, 'ingest-inserts');
    expect(readdirSync(staging)).toEqual([]);
    await insertRows(ch, 'requests', [rowOf(requestCompletedEvent())]);
    const bad = { table: 'nope', columns: TABLE_SCHEMA.requests, payload: Buffer.from([1]) };
    await expect(insertEncoded(ch, bad)).rejects.toThrow(/nope/);
    expect(readdirSync(staging)).toEqual([]);
  });
});

describe('the staging directory for chDB inserts', () => {
  it("removes files left by a process that is gone and keeps a live process's", () => {
    const dir = join(tempDir('wingman-staging-'), 'ingest-inserts');
    expect(prepareStaging(dir)).toBe(dir);
    // Linux pids stay below 2^22, so 999999999 is no process; this test's own pid is live; a
    // name without a pid is no insert's.
    for (const f of ['999999999-1-requests.rowbinary', `${process.pid}-7-requests.rowbinary`, 'stray'])
      writeFileSync(join(dir, f), 'x');
    prepareStaging(dir);
    expect(readdirSync(dir)).toEqual([`${process.pid}-7-requests.rowbinary`]);
  });
});

describe('insertEncoded', () => {
  it('refuses a client createWarehouse did not make, instead of guessing how to send to it', () => {
    const alien = createClient({ url: 'http://127.0.0.1:9' });
    const insert = { table: 'requests', columns: TABLE_SCHEMA.requests };
    expect(() => insertEncoded(alien, { ...insert, payload: Buffer.alloc(0) })).toThrow(
      /not made by createWarehouse/,
    );
  });
});

/**
 * A stand-in for a ClickHouse server, named as such: none can run here (Debian's clickhouse-server
 * is 18.16, older than this schema's types). It records what `@clickhouse/client` sends, to check
 * our side of the HTTP contract: the statement, the settings and the body, byte for byte.
 */
describe('inserts to a ClickHouse server (HTTP stand-in)', () => {
  async function standIn(answer: (res: ServerResponse) => void) {
    const seen: { method?: string; url: URL; body: Buffer }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: new URL(req.url ?? '/', 'http://x'),
          body: Buffer.concat(chunks),
        });
        answer(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const client = await createWarehouse(
      loadIngestConfig({ CLICKHOUSE_URL: `http://127.0.0.1:${port}`, RAW_TTL_DAYS: '365' }),
    );
    return {
      seen,
      ch: client,
      close: async () => {
        await client.close();
        await new Promise((r) => server.close(r));
      },
    };
  }

  it('sends the same encoded rows as the body of one INSERT, with synchronous-insert settings', async () => {
    const s = await standIn((res) => res.writeHead(200).end());
    try {
      const events = [requestCompletedEvent({ user_agent: 'tab\there' }), requestCompletedEvent()];
      const rows = events.map(rowOf);
      await insertRows(s.ch, 'requests', rows);
      expect(s.seen).toHaveLength(1);
      const [req] = s.seen;
      expect(req?.method).toBe('POST');
      expect(req?.url.searchParams.get('query')).toBe(
        `INSERT INTO requests (${TABLE_COLUMNS.requests.join(', ')}) FORMAT RowBinary`,
      );
      expect(req?.url.searchParams.get('async_insert')).toBe('0');
      expect(req?.url.searchParams.get('wait_for_async_insert')).toBe('0');
      // Room for every calendar day of the event-time window: 365 days back and one ahead touch 367.
      expect(req?.url.searchParams.get('max_partitions_per_insert_block')).toBe('367');
      expect(req?.body.equals(encodeRows('requests', rows))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("a server's error answer rejects the insert, so the worker leaves the batch in JetStream", async () => {
    const s = await standIn((res) =>
      res
        .writeHead(404, { 'x-clickhouse-exception-code': '60' })
        .end('Code: 60. DB::Exception: Table default.requests does not exist. (UNKNOWN_TABLE)\n'),
    );
    try {
      const e = requestCompletedEvent();
      await expect(insertRows(s.ch, 'requests', [rowOf(e)])).rejects.toThrow(/UNKNOWN_TABLE|does not exist/);
    } finally {
      await s.close();
    }
  });
});
