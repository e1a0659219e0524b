import { monotonicFactory } from 'ulid';
import { z } from 'zod';

/**
 * Analytics events: a versioned zod discriminated union. Every session,
 * connection and request on a relay becomes one of these. Bump EVENT_VERSION
 * (and add a union member for the old shape) on incompatible changes.
 */
export const EVENT_VERSION = 1;

/** ULIDs: 26 Crockford base32 characters, sortable by creation time. */
export const EVENT_ID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

const base = {
  v: z.literal(EVENT_VERSION),
  event_id: z.string().regex(EVENT_ID_PATTERN),
  /** Milliseconds since the epoch. */
  ts: z.number().int().positive(),
  relay_id: z.string().min(1).max(64),
  /** Empty for events that precede a session (auth.failed, blocked). */
  session_id: z.string().max(32),
};

const str = (max = 512) => z.string().max(max);
const count = () => z.number().int().nonnegative();
const ms = () => z.number().nonnegative();

export const sessionCreatedSchema = z.object({
  ...base,
  type: z.literal('session.created'),
  port: z.number().int().min(1).max(65535),
  requested_subdomain: str(32).nullable(),
  client_version: str(64),
  url_kind: z.enum(['path', 'host', 'both']),
  api_key_id: str(64).nullable(),
  client_ip: str(64),
});

export const sessionClosedSchema = z.object({
  ...base,
  type: z.literal('session.closed'),
  reason: z.enum(['client_closed', 'expired', 'grace_elapsed', 'shutdown']),
  duration_ms: ms(),
  requests: count(),
  bytes_in: count(),
  bytes_out: count(),
});

export const sessionExpiredSchema = z.object({
  ...base,
  type: z.literal('session.expired'),
  duration_ms: ms(),
});

export const connectionOpenedSchema = z.object({
  ...base,
  type: z.literal('connection.opened'),
  client_ip: str(64),
});
export const connectionClosedSchema = z.object({
  ...base,
  type: z.literal('connection.closed'),
  code: z.number().int().min(0).max(4999),
  reason: str(128),
  duration_ms: ms(),
});
export const connectionResumedSchema = z.object({
  ...base,
  type: z.literal('connection.resumed'),
  client_ip: str(64),
});
export const connectionAttemptSchema = z.object({
  ...base,
  type: z.literal('connection.attempt'),
  transport: z.enum(['relay', 'p2p']),
  success: z.boolean(),
  reason: str(128),
  client_ip: str(64),
});

export const requestCompletedSchema = z.object({
  ...base,
  type: z.literal('request.completed'),
  method: str(32),
  host_kind: z.enum(['path', 'host']),
  status: z.number().int().min(100).max(599),
  duration_ms: ms(),
  /** Time to the response head; equals duration_ms for answers the relay gave itself. */
  ttfb_ms: ms(),
  bytes_in: count(),
  bytes_out: count(),
  /** Query removed (pathWithoutQuery); ingest normalises ids before storing (normalizePath). */
  path: str(1024),
  visitor_ip: str(64),
  user_agent: str(512),
  referrer_host: str(256),
  /** The response's `server` and `x-powered-by`: framework hints. */
  server: str(128),
  powered_by: str(128),
  error_code: str(64),
});

export const websocketClosedSchema = z.object({
  ...base,
  type: z.literal('websocket.closed'),
  duration_ms: ms(),
  messages_in: count(),
  messages_out: count(),
  bytes_in: count(),
  bytes_out: count(),
  close_code: z.number().int().min(0).max(4999),
});

export const authFailedSchema = z.object({
  ...base,
  type: z.literal('auth.failed'),
  client_ip: str(64),
  reason: str(128),
});
export const rateLimitedSchema = z.object({
  ...base,
  type: z.literal('rate.limited'),
  key: str(128),
  limit: str(64),
  visitor_ip: str(64),
});
export const blockedSchema = z.object({
  ...base,
  type: z.literal('blocked'),
  visitor_ip: str(64),
  reason: str(128),
});

export const eventSchema = z.discriminatedUnion('type', [
  sessionCreatedSchema,
  sessionClosedSchema,
  sessionExpiredSchema,
  connectionOpenedSchema,
  connectionClosedSchema,
  connectionResumedSchema,
  connectionAttemptSchema,
  requestCompletedSchema,
  websocketClosedSchema,
  authFailedSchema,
  rateLimitedSchema,
  blockedSchema,
]);
export type WingmanEvent = z.infer<typeof eventSchema>;
export type EventType = WingmanEvent['type'];

/** An event before the publisher stamps it with v, event_id, ts and relay_id. */
export type EventInput<T extends EventType = EventType> = T extends EventType
  ? Omit<Extract<WingmanEvent, { type: T }>, 'v' | 'event_id' | 'ts' | 'relay_id'>
  : never;

/** Table each event type lands in, by family. */
export const EVENT_FAMILY: Readonly<
  Record<EventType, 'sessions' | 'connections' | 'requests' | 'websockets' | 'security'>
> = {
  'session.created': 'sessions',
  'session.closed': 'sessions',
  'session.expired': 'sessions',
  'connection.opened': 'connections',
  'connection.closed': 'connections',
  'connection.resumed': 'connections',
  'connection.attempt': 'connections',
  'request.completed': 'requests',
  'websocket.closed': 'websockets',
  'auth.failed': 'security',
  'rate.limited': 'security',
  blocked: 'security',
};

/**
 * A batch of events as published to JetStream. The envelope is parsed loosely
 * (events: unknown[]) so one bad event cannot sink the valid ones beside it.
 */
export const envelopeSchema = z.object({
  v: z.literal(1),
  relay_id: z.string(),
  /** Nats-Msg-Id of this envelope: relay id, boot id and sequence. */
  id: z.string(),
  events: z.array(z.unknown()),
});
export type Envelope = z.infer<typeof envelopeSchema>;

/**
 * A duration from performance.now() differences, in ms rounded to the microsecond: "2.385", not
 * "2.384567999839783". Finer digits are timer noise; the short form is ~30 bytes less per
 * request event in the relay's JSON, in JetStream and in ingest's parse.
 */
export const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;

/**
 * Monotonic ULIDs: sortable even within one millisecond. Event ids need
 * uniqueness, not secrecy, so the random part comes from Math.random rather
 * than crypto (which cost a syscall-backed fill per id on the relay's hot path).
 * Pass the event's own time when the id is made later (the relay stamps per envelope).
 */
export const newEventId: (ts?: number) => string = monotonicFactory(() => Math.random());

const NUMERIC = /^\d+$/;
const HEXISH = /^[0-9a-f]{16,}$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ULID_LIKE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * The path without its query or fragment, capped at 1024 characters. This is
 * what the relay puts in request.completed: cheap enough for the request path,
 * and no query string (tokens live there) leaves the relay.
 */
export function pathWithoutQuery(raw: string): string {
  let end = raw.length;
  const q = raw.indexOf('?');
  if (q >= 0) end = q;
  const h = raw.indexOf('#');
  if (h >= 0 && h < end) end = h;
  const path = end === raw.length ? raw : raw.slice(0, end);
  return path.length > 1024 ? `${path.slice(0, 1020)}...` : path;
}

/**
 * The path as analytics should group it: query and fragment removed, and
 * segments that look like ids replaced by `:id` (`/users/123` -> `/users/:id`).
 * Ingest applies it (off the relay's hot path); applying it twice changes nothing.
 */
export function normalizePath(raw: string): string {
  const path = pathWithoutQuery(raw);
  const parts = path.split('/');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.length > 0 && (NUMERIC.test(p) || UUID.test(p) || HEXISH.test(p) || ULID_LIKE.test(p))) {
      parts[i] = ':id';
      changed = true;
    }
  }
  return changed ? parts.join('/') : path;
}

/** Host of a Referer header, or '' when absent or not a URL. */
export function referrerHost(referer: string | undefined): string {
  if (!referer) return '';
  const start = referer.indexOf('//');
  if (start < 0) return '';
  const rest = referer.slice(start + 2);
  const end = rest.search(/[/?#]/);
  return (end < 0 ? rest : rest.slice(0, end)).slice(0, 256);
}
