import { z } from 'zod';
import { decodeText, encodeText } from './frame-codec.ts';

/** Bumped on any incompatible change to frames or control messages. */
export const PROTOCOL_VERSION = 1;

/** Session ids, and requested subdomains, as they appear in URLs. */
export const SESSION_ID_PATTERN = /^[a-zA-Z0-9]{8,32}$/;
export const sessionIdSchema = z.string().regex(SESSION_ID_PATTERN, 'must match ^[a-zA-Z0-9]{8,32}$');

/** Close codes the relay uses on a tunnel WebSocket (4000-4999 are application codes, RFC 6455 §7.4.2). */
export const TunnelCloseCode = {
  /** Client asked to close, or relay finished a goaway drain. */
  Normal: 1000,
  GoingAway: 1001,
  /** Hello missing, not JSON, or failing its schema. */
  BadHello: 4400,
  /** Missing or wrong token. */
  Unauthorized: 4401,
  /** The requested subdomain is held by another live session. */
  SubdomainTaken: 4409,
  /** Resume token unknown or its session has expired. */
  ResumeFailed: 4410,
  /** Client spoke a protocol version the relay does not support. */
  UnsupportedProtocol: 4426,
  /** MAX_SESSIONS reached. */
  AtCapacity: 4429,
  /** A malformed or out-of-order data frame. */
  ProtocolError: 4500,
  /** Session reached SESSION_TIMEOUT. */
  SessionExpired: 4408,
  /** Another connection resumed this session. */
  Replaced: 4001,
} as const;

const headerPairs = z.array(z.tuple([z.string().max(8192), z.string().max(65536)])).max(256);

/** Sent by the client as the first text message on /v1/connect. */
export const helloSchema = z.object({
  type: z.literal('hello'),
  protocol: z.number().int().positive(),
  token: z.string().max(512).optional(),
  localPort: z.number().int().min(1).max(65535),
  subdomain: sessionIdSchema.optional(),
  resumeToken: z.string().min(16).max(128).optional(),
  clientVersion: z.string().max(64),
});
export type Hello = z.infer<typeof helloSchema>;

export const sessionLimitsSchema = z.object({
  maxBodyBytes: z.number().int(),
  maxStreams: z.number().int(),
  sessionTimeoutMs: z.number().int(),
  resumeGraceMs: z.number().int(),
  streamWindowBytes: z.number().int(),
  maxFramePayloadBytes: z.number().int(),
  localTimeoutMs: z.number().int(),
});
export type SessionLimits = z.infer<typeof sessionLimitsSchema>;

/** Relay's answer to a good hello. */
export const sessionMessageSchema = z.object({
  type: z.literal('session'),
  sessionId: sessionIdSchema,
  urls: z.object({ path: z.string(), host: z.string() }),
  resumeToken: z.string(),
  resumed: z.boolean(),
  expiresAt: z.number().int(),
  limits: sessionLimitsSchema,
});
export type SessionMessage = z.infer<typeof sessionMessageSchema>;

/** Relay is shutting down: reconnect (resume) after the given delay. */
export const goawayMessageSchema = z.object({
  type: z.literal('goaway'),
  reason: z.string(),
  reconnectAfterMs: z.number().int().nonnegative(),
});
export type GoawayMessage = z.infer<typeof goawayMessageSchema>;

/** Client is closing its session for good (Ctrl-C). */
export const closeMessageSchema = z.object({ type: z.literal('close') });

export const clientControlSchema = z.discriminatedUnion('type', [helloSchema, closeMessageSchema]);
export type ClientControl = z.infer<typeof clientControlSchema>;
export const relayControlSchema = z.discriminatedUnion('type', [sessionMessageSchema, goawayMessageSchema]);
export type RelayControl = z.infer<typeof relayControlSchema>;

/** Payload of RequestHead and WsOpen frames. Path is already stripped of any /session/{id} prefix. */
export const requestHeadSchema = z.object({
  method: z.string().min(1).max(32),
  path: z.string().min(1).max(16384),
  headers: headerPairs,
});
export type RequestHead = z.infer<typeof requestHeadSchema>;

/**
 * Hop-by-hop header names (RFC 9110 §7.6.1), lower case: they describe one connection and are
 * never forwarded, by the relay to the client nor by the client to the local app.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Payload of ResponseHead frames. */
export const responseHeadSchema = z.object({
  status: z.number().int().min(100).max(599),
  statusText: z.string().max(128).optional(),
  headers: headerPairs,
});
export type ResponseHead = z.infer<typeof responseHeadSchema>;

/** Payload of WsAccept frames. */
export const wsAcceptSchema = z.object({ protocol: z.string().max(256).optional() });
export type WsAccept = z.infer<typeof wsAcceptSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parse JSON bytes or text against a schema without throwing. */
export function parseJson<T>(schema: z.ZodType<T>, input: Uint8Array | string): ParseResult<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof input === 'string' ? input : decodeText(input));
  } catch {
    return { ok: false, error: 'not valid JSON' };
  }
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, error: z.prettifyError(r.error) };
}

export function jsonBytes(value: unknown): Uint8Array {
  return encodeText(JSON.stringify(value));
}
