import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestCompletedEvent } from '../../../test/fixtures/events.ts';
import { encodeRows, insertRows } from '../../../test/helpers/rows.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { loadIngestConfig } from '../config.ts';
import { isEvent } from '../validate/event-validator.ts';
import { type Row, TABLE_COLUMNS, toRow } from '../validate/plan-batch.ts';
import { runMigrations } from './migrate.ts';
import { createWarehouse, insertEncoded } from './warehouse.ts';

/** Real embedded chDB (this file runs in its own process): rows go in as the worker sends them. */
let ch: ClickHouseClient;
beforeAll(async () => {
  ch = await createWarehouse(loadIngestConfig({ CHDB_PATH: tempDir('wingman-insert-') }));
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
      'SELECT event_id, path, user_agent, referrer_host, bytes_out, duration_ms FROM requests WHERE event_id IN {ids:Array(String)}',
    query_params: { ids },
    format: 'JSONEachRow',
  });
  return r.json<Record<string, unknown>>();
};

describe('encoded inserts into chDB', () => {
  it('every string comes back exactly: quotes, backslashes, tabs, newlines, control characters, any code point', async () => {
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
    const text = fc.string({
      unit: fc.oneof(special, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })),
      maxLength: 40,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ path: text, ua: text, ref: text, bytes: fc.nat() }), {
          minLength: 1,
          maxLength: 20,
        }),
        async (inputs) => {
          const events = inputs.map((i) =>
            requestCompletedEvent({
              path: `/${i.path}`,
              user_agent: i.ua,
              referrer_host: i.ref,
              bytes_out: i.bytes,
            }),
          );
          const rows = events.map(rowOf);
          await insertRows(ch, 'requests', rows);
          const back = new Map((await stored(rows.map((r) => r.event_id))).map((r) => [r.event_id, r]));
          for (const r of rows) {
            // UInt64 comes back as a number from chDB and as a string from a server: compare values.
            const got = back.get(r.event_id);
            expect({ ...got, bytes_out: Number(got?.bytes_out) }).toEqual({
              event_id: r.event_id,
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

  it('one JSON array per line, columns in TABLE_COLUMNS order', () => {
    const e = requestCompletedEvent({ path: '/a\tb', user_agent: 'say "hi"\n' });
    const row = rowOf(e);
    const lines = encodeRows('requests', [row, row]).toString().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    const parsed = JSON.parse(lines[0]!) as unknown[];
    const at = (column: string) => parsed[TABLE_COLUMNS.requests.indexOf(column)];
    expect(parsed).toHaveLength(TABLE_COLUMNS.requests.length);
    expect([at('event_id'), at('path'), at('user_agent')]).toEqual([row.event_id, '/a\tb', 'say "hi"\n']);
  });

  it('a batch with a row the table cannot take rejects as a whole: nothing of it is stored', async () => {
    const good = rowOf(requestCompletedEvent());
    const bad = { ...rowOf(requestCompletedEvent()), status: 'not a number' };
    await expect(insertRows(ch, 'requests', [good, bad])).rejects.toThrow(/Cannot parse input/);
    expect(await stored([good.event_id, bad.event_id])).toEqual([]);
  });
});

describe('insertEncoded', () => {
  it('refuses a client createWarehouse did not make, instead of guessing how to send to it', () => {
    const alien = createClient({ url: 'http://127.0.0.1:9' });
    const insert = { table: 'requests', columns: ['event_id'], format: 'JSONCompactEachRow' as const };
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
    const client = await createWarehouse(loadIngestConfig({ CLICKHOUSE_URL: `http://127.0.0.1:${port}` }));
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
        `INSERT INTO requests (${TABLE_COLUMNS.requests.join(', ')}) FORMAT JSONCompactEachRow`,
      );
      expect(req?.url.searchParams.get('async_insert')).toBe('0');
      expect(req?.url.searchParams.get('wait_for_async_insert')).toBe('0');
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
