import {
  decodeEnvelope,
  EVENT_FAMILY,
  envelopeSchema,
  eventSchema,
  normalizePath,
  parseJson,
  type WingmanEvent,
} from '@wingman/shared';
import { z } from 'zod';
import { countryOf, frameworkOf } from './enrich.ts';
import { isEvent } from './event-validator.ts';
import { type Column, type ColumnType, compileRowWriter, RowBinaryWriter } from './row-binary.ts';

export type TableName = (typeof EVENT_FAMILY)[keyof typeof EVENT_FAMILY];

const S = 'String';
const DT = "DateTime64(3, 'UTC')";
const F = 'Float64';
const U64 = 'UInt64';
const U16 = 'UInt16';
const col = (name: string, type: ColumnType, dflt?: string | number): Column =>
  dflt === undefined ? { name, type } : { name, type, default: dflt };
const stamps = (...more: Column[]) => [col('event_id', S), col('ts', DT), ...more];

/**
 * Columns ingest writes, per raw table, in insert order, with the type each is sent as and the
 * default a row without it stores (clickhouse/migrations/0001_raw_tables.sql; a test checks names,
 * types and defaults against the live schema). A `LowCardinality(String)` column is sent as
 * `String`. Rows go in as RowBinary (row-binary.ts).
 */
export const TABLE_SCHEMA: Readonly<Record<TableName, readonly Column[]>> = {
  sessions: stamps(
    col('type', S),
    col('relay_id', S),
    col('session_id', S),
    col('port', U16),
    col('requested_subdomain', S),
    col('client_version', S),
    col('url_kind', S),
    col('api_key_id', S),
    col('client_ip', S),
    col('country', S),
    col('reason', S),
    col('duration_ms', F),
    col('requests', U64),
    col('bytes_in', U64),
    col('bytes_out', U64),
  ),
  connections: stamps(
    col('type', S),
    col('relay_id', S),
    col('session_id', S),
    col('transport', S, 'relay'),
    col('success', 'UInt8', 1),
    col('code', U16),
    col('reason', S),
    col('client_ip', S),
    col('duration_ms', F),
  ),
  requests: stamps(
    col('relay_id', S),
    col('session_id', S),
    col('method', S),
    col('host_kind', S),
    col('status', U16),
    col('duration_ms', F),
    col('ttfb_ms', F),
    col('bytes_in', U64),
    col('bytes_out', U64),
    col('path', S),
    col('visitor_ip', S),
    col('country', S),
    col('user_agent', S),
    col('referrer_host', S),
    col('server', S),
    col('powered_by', S),
    col('framework', S),
    col('error_code', S),
  ),
  websockets: stamps(
    col('relay_id', S),
    col('session_id', S),
    col('duration_ms', F),
    col('messages_in', U64),
    col('messages_out', U64),
    col('bytes_in', U64),
    col('bytes_out', U64),
    col('close_code', U16),
  ),
  security: stamps(
    col('type', S),
    col('relay_id', S),
    col('session_id', S),
    col('ip', S),
    col('key', S),
    col('reason', S),
  ),
};

/** The column names of TABLE_SCHEMA, per table, in insert order. */
export const TABLE_COLUMNS: Readonly<Record<TableName, readonly string[]>> = mapTables((cols) =>
  cols.map((c) => c.name),
);

const ROW_WRITERS = mapTables((cols) => compileRowWriter<Row>(cols));

function mapTables<T>(f: (cols: readonly Column[]) => T): Record<TableName, T> {
  return Object.fromEntries(Object.entries(TABLE_SCHEMA).map(([t, cols]) => [t, f(cols)])) as Record<
    TableName,
    T
  >;
}

/** Append one row (as toRow makes it) to a table's RowBinary rows. */
export function writeRow(table: TableName, w: RowBinaryWriter, row: Row): void {
  ROW_WRITERS[table](w, row);
}

export interface InboundMessage {
  data: Uint8Array;
  /** The message's Content-Encoding header (envelope-encoding.ts); undefined or '' for plain JSON. */
  encoding?: string;
  /** JetStream redelivered it, or the relay replayed it from its spool: its events may already be stored. */
  mayRepeat: boolean;
  /**
   * Names this message in its DLQ entries' Nats-Msg-Ids (worker.ts: its stream sequence and
   * Nats-Msg-Id), so a batch that is retried or redelivered puts each bad event in the DLQ once.
   */
  dlqId?: string;
}

export interface Row {
  event_id: string;
  /** Event time, ms since the epoch (DateTime64(3) in ClickHouse). */
  ts: number;
  [column: string]: unknown;
}

export interface DlqEntry {
  reason: string;
  /** The bad envelope, or the one bad event inside a good envelope. */
  payload: Uint8Array | string;
  /** The payload's Content-Encoding, when it is a bad envelope that came encoded. */
  encoding?: string;
  /** Its Nats-Msg-Id in the DLQ stream: the message's dlqId and which part of it was bad. */
  id?: string;
}

/**
 * One table's rows in a batch, encoded as they are planned: each event becomes its RowBinary row
 * at once, so a batch holds bytes, not ~20-field row objects that live through the plan's slices
 * and the previous insert.
 */
export interface TableRows {
  rows: RowBinaryWriter;
  /** The event_id of each row. */
  ids: string[];
}

/** A table's events that may already be stored, and the time range to look for them in. */
export interface MaybeStored {
  ids: Set<string>;
  /** Earliest and latest of their event times, ms. */
  minTs: number;
  maxTs: number;
}

/** Event times ingest stores, ms since the epoch: an event outside goes to the DLQ (eventTimeWindow). */
export interface TimeWindow {
  min: number;
  max: number;
}

/** How far ahead of ingest's clock an event's time may be (a relay's clock running fast). */
export const MAX_EVENT_AHEAD_MS = 24 * 60 * 60_000;

/**
 * The event times ingest accepts at `now`: from `rawTtlDays` ago, as far back as the raw tables
 * keep rows (their TTL would delete older ones at the next merge), to MAX_EVENT_AHEAD_MS ahead.
 * Besides keeping absurd times out, it bounds the days, and so the partitions, that one insert
 * can touch (warehouse.ts sets max_partitions_per_insert_block to match): an insert over more
 * than that limit fails every time, and its batch would be retried for ever.
 */
export function eventTimeWindow(rawTtlDays: number, now: number): TimeWindow {
  return { min: now - rawTtlDays * 24 * 60 * 60_000, max: now + MAX_EVENT_AHEAD_MS };
}

/** An event time for a DLQ reason: ISO 8601 where Date can show it. */
const showTime = (ms: number) => (Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `${ms} ms`);

export interface BatchPlan {
  /** Event times stored; undefined: any. */
  window: TimeWindow | undefined;
  tables: Map<TableName, TableRows>;
  /** Events that may already be in ClickHouse, by table: check before inserting. */
  maybeStored: Map<TableName, MaybeStored>;
  dlq: DlqEntry[];
  events: number;
  /** Envelope bytes planned, as inflated (what the rows and DLQ entries are made from). */
  bytes: number;
}

/** Step result, in the style of PostHog's ingestion steps. */
export type Step<T> = { kind: 'ok'; value: T } | { kind: 'dlq'; reason: string };

export function parseEnvelope(data: Uint8Array): Step<z.infer<typeof envelopeSchema>> {
  const r = parseJson(envelopeSchema, data);
  return r.ok ? { kind: 'ok', value: r.value } : { kind: 'dlq', reason: `bad envelope: ${r.error}` };
}

/** Validate one event by the shared schema: the compiled check first; zod for the verdict and reason when it fails. */
export function validateEvent(raw: unknown): Step<WingmanEvent> {
  if (isEvent(raw)) return { kind: 'ok', value: raw };
  const r = eventSchema.safeParse(raw);
  return r.success
    ? { kind: 'ok', value: r.data }
    : { kind: 'dlq', reason: `invalid event: ${z.prettifyError(r.error)}` };
}

/**
 * ClickHouse DateTime64(3) text for a millisecond timestamp: Unix seconds with three decimals,
 * which ClickHouse parses as an instant (no time zone involved). For query parameters (the
 * stored-id lookup's time range); rows carry ts as Int64 milliseconds (row-binary.ts).
 */
export function chTime(ms: number): string {
  const frac = ms % 1000;
  return `${(ms - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** The row an event becomes in its family's table, enriched (country, framework, normalised path). */
export function toRow(e: WingmanEvent): { table: TableName; row: Row } {
  const common = { event_id: e.event_id, ts: e.ts, relay_id: e.relay_id, session_id: e.session_id };
  const table = EVENT_FAMILY[e.type];
  switch (e.type) {
    case 'session.created':
      return {
        table,
        row: {
          ...common,
          type: e.type,
          port: e.port,
          requested_subdomain: e.requested_subdomain ?? '',
          client_version: e.client_version,
          url_kind: e.url_kind,
          api_key_id: e.api_key_id ?? '',
          client_ip: e.client_ip,
          country: countryOf(e.client_ip),
        },
      };
    case 'session.closed':
      return {
        table,
        row: {
          ...common,
          type: e.type,
          reason: e.reason,
          duration_ms: e.duration_ms,
          requests: e.requests,
          bytes_in: e.bytes_in,
          bytes_out: e.bytes_out,
        },
      };
    case 'session.expired':
      return { table, row: { ...common, type: e.type, duration_ms: e.duration_ms } };
    case 'connection.opened':
    case 'connection.resumed':
      return { table, row: { ...common, type: e.type, client_ip: e.client_ip } };
    case 'connection.closed':
      return {
        table,
        row: { ...common, type: e.type, code: e.code, reason: e.reason, duration_ms: e.duration_ms },
      };
    case 'connection.attempt':
      return {
        table,
        row: {
          ...common,
          type: e.type,
          transport: e.transport,
          success: e.success ? 1 : 0,
          reason: e.reason,
          client_ip: e.client_ip,
        },
      };
    case 'request.completed':
      // Fields listed one by one: rest/spread copies of parsed objects were the ingest hot spot.
      return {
        table,
        row: {
          event_id: e.event_id,
          ts: e.ts,
          relay_id: e.relay_id,
          session_id: e.session_id,
          method: e.method,
          host_kind: e.host_kind,
          status: e.status,
          duration_ms: e.duration_ms,
          ttfb_ms: e.ttfb_ms,
          bytes_in: e.bytes_in,
          bytes_out: e.bytes_out,
          // The relay sends the path without its query; ids are normalised here, off its hot path.
          path: normalizePath(e.path),
          visitor_ip: e.visitor_ip,
          country: countryOf(e.visitor_ip),
          user_agent: e.user_agent,
          referrer_host: e.referrer_host,
          server: e.server,
          powered_by: e.powered_by,
          framework: frameworkOf(e.server, e.powered_by),
          error_code: e.error_code,
        },
      };
    case 'websocket.closed':
      return {
        table,
        row: {
          ...common,
          duration_ms: e.duration_ms,
          messages_in: e.messages_in,
          messages_out: e.messages_out,
          bytes_in: e.bytes_in,
          bytes_out: e.bytes_out,
          close_code: e.close_code,
        },
      };
    case 'auth.failed':
      return { table, row: { ...common, type: e.type, ip: e.client_ip, reason: e.reason } };
    case 'rate.limited':
      return { table, row: { ...common, type: e.type, ip: e.visitor_ip, key: e.key, reason: e.limit } };
    case 'blocked':
      return { table, row: { ...common, type: e.type, ip: e.visitor_ip, reason: e.reason } };
  }
}

/**
 * Turn a fetched batch into rows per table and DLQ entries. Pure: a bad
 * envelope or event goes to the DLQ with its reason and never holds up the
 * valid events around it.
 */
export function planBatch(messages: readonly InboundMessage[], window?: TimeWindow): BatchPlan {
  const plan = emptyPlan(window);
  for (const msg of messages) planMessage(plan, msg);
  return plan;
}

export function emptyPlan(window?: TimeWindow): BatchPlan {
  return { window, tables: new Map(), maybeStored: new Map(), dlq: [], events: 0, bytes: 0 };
}

/** Add one message (an envelope of events) to a plan; planBatch is this over a whole batch. */
export function planMessage(plan: BatchPlan, msg: InboundMessage): void {
  const decoded = decodeEnvelope(msg.data, msg.encoding);
  plan.bytes += decoded.ok ? decoded.json.byteLength : msg.data.byteLength;
  const env = decoded.ok
    ? parseEnvelope(decoded.json)
    : ({ kind: 'dlq', reason: `bad envelope: ${decoded.error}` } as const);
  if (env.kind === 'dlq') {
    // The envelope as it came, with its encoding, so the DLQ keeps what was sent.
    plan.dlq.push({
      reason: env.reason,
      payload: msg.data,
      encoding: msg.encoding || undefined,
      id: dlqEntryId(msg, 'envelope'),
    });
    return;
  }
  const events = env.value.events;
  for (let i = 0; i < events.length; i++) {
    const raw = events[i];
    const ev = validateEvent(raw);
    if (ev.kind === 'dlq') {
      plan.dlq.push({
        reason: ev.reason,
        payload: JSON.stringify(raw) ?? 'undefined',
        id: dlqEntryId(msg, i),
      });
      continue;
    }
    const e = ev.value;
    const w = plan.window;
    if (w && (e.ts < w.min || e.ts > w.max)) {
      plan.dlq.push({
        reason:
          `event time out of range: ${showTime(e.ts)} is ` +
          (e.ts < w.min
            ? `before ${showTime(w.min)}, older than the raw tables keep (RAW_TTL_DAYS)`
            : `after ${showTime(w.max)}, more than ${MAX_EVENT_AHEAD_MS / 3_600_000} h ahead of ingest's clock`),
        payload: JSON.stringify(raw),
        id: dlqEntryId(msg, i),
      });
      continue;
    }
    plan.events++;
    const { table, row } = toRow(e);
    let rows = plan.tables.get(table);
    if (!rows) {
      rows = { rows: new RowBinaryWriter(), ids: [] };
      plan.tables.set(table, rows);
    }
    writeRow(table, rows.rows, row);
    rows.ids.push(e.event_id);
    if (msg.mayRepeat) {
      const maybe = plan.maybeStored.get(table);
      if (!maybe) plan.maybeStored.set(table, { ids: new Set([e.event_id]), minTs: e.ts, maxTs: e.ts });
      else {
        maybe.ids.add(e.event_id);
        if (e.ts < maybe.minTs) maybe.minTs = e.ts;
        if (e.ts > maybe.maxTs) maybe.maxTs = e.ts;
      }
    }
  }
}

const dlqEntryId = (msg: InboundMessage, part: 'envelope' | number): string | undefined =>
  msg.dlqId === undefined ? undefined : `${msg.dlqId}:${part}`;

/** Drop rows whose event ids are already stored, and repeats within the batch itself. */
export function withoutStored(rows: Readonly<TableRows>, stored: ReadonlySet<string>): TableRows {
  const seen = new Set<string>();
  const keep: number[] = [];
  rows.ids.forEach((id, i) => {
    if (stored.has(id) || seen.has(id)) return;
    seen.add(id);
    keep.push(i);
  });
  if (keep.length === rows.ids.length) return rows;
  return { rows: rows.rows.pick(keep), ids: keep.map((i) => rows.ids[i]!) };
}
