import {
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

export type TableName = (typeof EVENT_FAMILY)[keyof typeof EVENT_FAMILY];

/**
 * Columns ingest writes, per raw table, in insert order (clickhouse/migrations/0001_raw_tables.sql;
 * a test checks them against the live schema). Rows go in as JSONCompactEachRow arrays, which
 * chDB parses about 1.7x faster than JSONEachRow objects; a missing value is sent as null and
 * becomes the column default.
 */
export const TABLE_COLUMNS: Readonly<Record<TableName, readonly string[]>> = {
  sessions: [
    'event_id',
    'ts',
    'type',
    'relay_id',
    'session_id',
    'port',
    'requested_subdomain',
    'client_version',
    'url_kind',
    'api_key_id',
    'client_ip',
    'country',
    'reason',
    'duration_ms',
    'requests',
    'bytes_in',
    'bytes_out',
  ],
  connections: [
    'event_id',
    'ts',
    'type',
    'relay_id',
    'session_id',
    'transport',
    'success',
    'code',
    'reason',
    'client_ip',
    'duration_ms',
  ],
  requests: [
    'event_id',
    'ts',
    'relay_id',
    'session_id',
    'method',
    'host_kind',
    'status',
    'duration_ms',
    'ttfb_ms',
    'bytes_in',
    'bytes_out',
    'path',
    'visitor_ip',
    'country',
    'user_agent',
    'referrer_host',
    'server',
    'powered_by',
    'framework',
    'error_code',
  ],
  websockets: [
    'event_id',
    'ts',
    'relay_id',
    'session_id',
    'duration_ms',
    'messages_in',
    'messages_out',
    'bytes_in',
    'bytes_out',
    'close_code',
  ],
  security: ['event_id', 'ts', 'type', 'relay_id', 'session_id', 'ip', 'key', 'reason'],
};

export interface InboundMessage {
  data: Uint8Array;
  /** JetStream redelivered it, or the relay replayed it from its spool: its events may already be stored. */
  mayRepeat: boolean;
}

export interface Row {
  event_id: string;
  ts: string;
  [column: string]: unknown;
}

export interface DlqEntry {
  reason: string;
  /** The bad envelope, or the one bad event inside a good envelope. */
  payload: Uint8Array | string;
}

export interface BatchPlan {
  rows: Map<TableName, Row[]>;
  /** Rows whose events may already be in ClickHouse, by table: check before inserting. */
  maybeStored: Map<TableName, Set<string>>;
  dlq: DlqEntry[];
  events: number;
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
 * which ClickHouse parses as an instant (no time zone involved). About 10x cheaper than
 * formatting a date, and this runs for every event.
 */
export function chTime(ms: number): string {
  const frac = ms % 1000;
  return `${(ms - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** The row an event becomes in its family's table, enriched (country, framework, normalised path). */
export function toRow(e: WingmanEvent): { table: TableName; row: Row } {
  const common = { event_id: e.event_id, ts: chTime(e.ts), relay_id: e.relay_id, session_id: e.session_id };
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
          ts: chTime(e.ts),
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
export function planBatch(messages: readonly InboundMessage[]): BatchPlan {
  const plan = emptyPlan();
  for (const msg of messages) planMessage(plan, msg);
  return plan;
}

export function emptyPlan(): BatchPlan {
  return { rows: new Map(), maybeStored: new Map(), dlq: [], events: 0 };
}

/** Add one message (an envelope of events) to a plan; planBatch is this over a whole batch. */
export function planMessage(plan: BatchPlan, msg: InboundMessage): void {
  const env = parseEnvelope(msg.data);
  if (env.kind === 'dlq') {
    plan.dlq.push({ reason: env.reason, payload: msg.data });
    return;
  }
  for (const raw of env.value.events) {
    const ev = validateEvent(raw);
    if (ev.kind === 'dlq') {
      plan.dlq.push({ reason: ev.reason, payload: JSON.stringify(raw) ?? 'undefined' });
      continue;
    }
    plan.events++;
    const { table, row } = toRow(ev.value);
    const list = plan.rows.get(table);
    if (list) list.push(row);
    else plan.rows.set(table, [row]);
    if (msg.mayRepeat) {
      const ids = plan.maybeStored.get(table);
      if (ids) ids.add(row.event_id);
      else plan.maybeStored.set(table, new Set([row.event_id]));
    }
  }
}

/** Drop rows whose event ids are already stored, and repeats within the batch itself. */
export function withoutStored(rows: readonly Row[], stored: ReadonlySet<string>): Row[] {
  const seen = new Set<string>();
  return rows.filter((r) => {
    if (stored.has(r.event_id) || seen.has(r.event_id)) return false;
    seen.add(r.event_id);
    return true;
  });
}
