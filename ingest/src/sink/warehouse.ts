import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import type { IngestConfig } from '../config.ts';
import { eventTimeWindow } from '../validate/plan-batch.ts';
import { type Column, structureOf } from '../validate/row-binary.ts';

/**
 * Settings for every insert. Synchronous inserts (newer servers default to async). And no
 * `optimize_on_insert`: ReplacingMergeTree would otherwise sort and collapse each inserted block
 * by its key, ~0.5 µs per row (docs/performance.md, ninth session), to remove repeats that
 * ingest already removed (withoutStored); a repeat that still got in collapses on merge, and the
 * queries allow for it (docs/events.md, "Exactly once").
 */
const INSERT_SETTINGS = { async_insert: 0, wait_for_async_insert: 0, optimize_on_insert: 0 } as const;

const DAY_MS = 24 * 60 * 60_000;

/**
 * INSERT_SETTINGS, and room for one insert to touch every day partition of ingest's event-time
 * window (eventTimeWindow), which is all the days a stored event can fall on: a span of N days
 * touches at most ceil(N) + 1 calendar days. ClickHouse's default of 100 would fail, on every
 * retry, a batch spanning more days.
 */
export function insertSettings(rawTtlDays: number) {
  const { min, max } = eventTimeWindow(rawTtlDays, 0);
  const days = Math.ceil((max - min) / DAY_MS) + 1;
  // UInt64 settings go as strings (@clickhouse/client's ClickHouseSettings).
  return { ...INSERT_SETTINGS, max_partitions_per_insert_block: String(Math.max(100, days)) };
}

/** Rows already encoded as RowBinary (row-binary.ts) for `table (columns)`. */
export interface EncodedInsert {
  table: string;
  columns: readonly Column[];
  payload: Buffer;
}

const settingsSql = (settings: Record<string, number | string>) =>
  Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join(', ');
const namesOf = (columns: readonly Column[]) => columns.map((c) => c.name).join(', ');
/** A ClickHouse string literal. */
const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

type SendEncoded = (insert: EncodedInsert) => Promise<void>;
/** How each client made here sends encoded rows (see insertEncoded). */
const senders = new WeakMap<ClickHouseClient, SendEncoded>();

/**
 * One @clickhouse/client for both warehouses: embedded chDB by default, a
 * ClickHouse server over HTTP when CLICKHOUSE_URL is set. chDB allows one data
 * directory per process, so only ingest opens it. Queries, commands and
 * migrations go through the client alike; inserts through insertEncoded.
 */
export async function createWarehouse(c: Readonly<IngestConfig>): Promise<ClickHouseClient> {
  const settings = insertSettings(c.RAW_TTL_DAYS);
  if (c.CLICKHOUSE_URL) {
    const ch = createClient({
      url: c.CLICKHOUSE_URL,
      username: c.CLICKHOUSE_USER,
      password: c.CLICKHOUSE_PASSWORD,
      database: c.CLICKHOUSE_DATABASE,
      clickhouse_settings: INSERT_SETTINGS,
      request_timeout: 30_000,
      // The client would print its own (non-JSON) error lines to the console; every failure also
      // reaches our code, which logs it once, through pino.
      log: { level: ClickHouseLogLevel.OFF },
    });
    senders.set(ch, async ({ table, columns, payload }) => {
      const r = await ch.exec({
        query: `INSERT INTO ${table} (${namesOf(columns)}) FORMAT RowBinary`,
        values: Readable.from([payload]),
        clickhouse_settings: settings,
      });
      // An INSERT answers with an empty body; drain it so the socket goes back to the pool.
      for await (const _ of r.stream);
    });
    return ch;
  }
  const { createChdbConnection } = await import('chdb/connection');
  const connection = createChdbConnection({ path: chdbPath(c) });
  const ch = createClient({ connection } as Parameters<typeof createClient>[0]);
  // chDB takes an insert's data inline only in text formats, so RowBinary goes by way of a file
  // that the INSERT reads with `file()`, removed after its insert.
  const staging = prepareStaging(resolve(chdbPath(c), 'ingest-inserts'));
  const sqlSettings = settingsSql(settings);
  let seq = 0;
  senders.set(ch, async ({ table, columns, payload }) => {
    const file = join(staging, `${process.pid}-${++seq}-${table}.rowbinary`);
    await writeFile(file, payload);
    try {
      await connection.chdb.queryAsync(
        `INSERT INTO ${table} (${namesOf(columns)}) SETTINGS ${sqlSettings} ` +
          `SELECT * FROM file(${sqlString(file)}, 'RowBinary', ${sqlString(structureOf(columns))})`,
      );
    } finally {
      await rm(file, { force: true });
    }
  });
  return ch;
}

/**
 * Insert rows already encoded as RowBinary; both warehouses get the same bytes. To a server they
 * go as the body of the client's `exec`. To chDB they go as a file the INSERT reads: its inline
 * insert (`connection.chdb.rawInsert`) takes text formats only, and parsing text was ~40% of
 * chDB's CPU per row (docs/performance.md, thirteenth session).
 */
export function insertEncoded(ch: ClickHouseClient, insert: EncodedInsert): Promise<void> {
  const send = senders.get(ch);
  if (!send) throw new Error('insertEncoded: this ClickHouse client was not made by createWarehouse');
  return send(insert);
}

/**
 * Create the directory for insert files, or clear it of files named for a process that is gone
 * (a crash mid-insert). Files of a live process stay: another ingest may be inserting them.
 */
export function prepareStaging(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) {
    const pid = Number(/^(\d+)-/.exec(f)?.[1]);
    if (!isAlive(pid)) rmSync(join(dir, f), { force: true });
  }
  return dir;
}

/** Whether a process with this id runs (signal 0 checks without sending; EPERM means it runs). */
function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const chdbPath = (c: Readonly<IngestConfig>): string => c.CHDB_PATH ?? join(c.DATA_DIR, 'chdb');
