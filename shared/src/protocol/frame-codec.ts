/**
 * Binary data frames of the tunnel protocol.
 *
 * Wire layout (big endian), 10-byte header then payload:
 *
 *   0       1       2               6               10
 *   +-------+-------+---------------+---------------+---------...
 *   | type  | flags |   stream id   |  payload len  | payload
 *   +-------+-------+---------------+---------------+---------...
 *
 * One WebSocket binary message carries one or more whole frames, so a sender
 * may coalesce several small frames into one message. The codec is pure: bytes
 * in, typed frames or a typed error out. It never throws on input.
 */

export const FrameType = {
  /** relay -> client: a visitor HTTP request head (JSON, see RequestHead). */
  RequestHead: 1,
  /** client -> relay: the local app's response head (JSON, see ResponseHead). */
  ResponseHead: 2,
  /** both: body bytes for a stream. FIN marks the end of the body. */
  Data: 3,
  /** both: abort a stream. Payload is a UTF-8 error code. */
  Reset: 4,
  /** both: flow-control credit. Payload is a u32 byte increment. */
  Window: 5,
  /** relay -> client: a visitor WebSocket upgrade (JSON, see RequestHead). */
  WsOpen: 6,
  /** client -> relay: the local app accepted the WebSocket (JSON, see WsAccept). */
  WsAccept: 7,
  /** both: one WebSocket message. BINARY flag marks binary messages. */
  WsMessage: 8,
  /** both: WebSocket close. Payload is u16 code then UTF-8 reason. */
  WsClose: 9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FrameFlag = {
  /** Last frame of a body (Data, RequestHead or ResponseHead with no body). */
  Fin: 0x01,
  /** A WsMessage carrying a binary (not text) message. */
  Binary: 0x02,
} as const;

const KNOWN_FLAGS = FrameFlag.Fin | FrameFlag.Binary;
const MAX_TYPE = FrameType.WsClose;

export const FRAME_HEADER_BYTES = 10;
/** Default largest payload a decoder accepts. Senders chunk bodies below this. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
export const MAX_STREAM_ID = 0xffff_ffff;

export interface Frame {
  type: FrameType;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

export type FrameErrorCode = 'FRAME_UNKNOWN_TYPE' | 'FRAME_BAD_FLAGS' | 'FRAME_TOO_LARGE' | 'FRAME_TRUNCATED';

/** A malformed frame. Returned, never thrown, by the decoders. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type DecodeResult = { ok: true; frames: Frame[] } | { ok: false; error: FrameError };

/** Encode one frame into a fresh buffer. */
export function encodeFrame(type: FrameType, streamId: number, payload?: Uint8Array, flags = 0): Uint8Array {
  const len = payload ? payload.byteLength : 0;
  const out = new Uint8Array(FRAME_HEADER_BYTES + len);
  writeHeader(out, 0, type, flags, streamId, len);
  if (payload && len > 0) out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Encode several frames into one buffer, ready to send as a single message. */
export function encodeFrames(frames: readonly Frame[]): Uint8Array {
  let total = 0;
  for (const f of frames) total += FRAME_HEADER_BYTES + f.payload.byteLength;
  const out = new Uint8Array(total);
  let off = 0;
  for (const f of frames) {
    writeHeader(out, off, f.type, f.flags, f.streamId, f.payload.byteLength);
    out.set(f.payload, off + FRAME_HEADER_BYTES);
    off += FRAME_HEADER_BYTES + f.payload.byteLength;
  }
  return out;
}

function writeHeader(
  out: Uint8Array,
  off: number,
  type: number,
  flags: number,
  streamId: number,
  len: number,
): void {
  out[off] = type;
  out[off + 1] = flags;
  out[off + 2] = streamId >>> 24;
  out[off + 3] = (streamId >>> 16) & 0xff;
  out[off + 4] = (streamId >>> 8) & 0xff;
  out[off + 5] = streamId & 0xff;
  out[off + 6] = len >>> 24;
  out[off + 7] = (len >>> 16) & 0xff;
  out[off + 8] = (len >>> 8) & 0xff;
  out[off + 9] = len & 0xff;
}

function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

/** Validate the header at `off` (which must have 10 readable bytes); return the payload length or an error. */
function checkHeader(buf: Uint8Array, off: number, maxPayload: number): number | FrameError {
  const type = buf[off]!;
  if (type < 1 || type > MAX_TYPE) return new FrameError('FRAME_UNKNOWN_TYPE', `unknown frame type ${type}`);
  const flags = buf[off + 1]!;
  if ((flags & ~KNOWN_FLAGS) !== 0)
    return new FrameError('FRAME_BAD_FLAGS', `unknown flag bits 0x${flags.toString(16)}`);
  const len = readU32(buf, off + 6);
  if (len > maxPayload)
    return new FrameError('FRAME_TOO_LARGE', `payload of ${len} bytes exceeds ${maxPayload}`);
  return len;
}

/**
 * Decode a buffer that must hold only whole frames (one WebSocket message).
 * Payloads are views into `buf`; copy them if `buf` is reused.
 */
export function decodeFrames(buf: Uint8Array, maxPayload = DEFAULT_MAX_PAYLOAD_BYTES): DecodeResult {
  const frames: Frame[] = [];
  let off = 0;
  while (off < buf.byteLength) {
    if (buf.byteLength - off < FRAME_HEADER_BYTES) {
      return { ok: false, error: new FrameError('FRAME_TRUNCATED', 'message ends inside a frame header') };
    }
    const len = checkHeader(buf, off, maxPayload);
    if (typeof len !== 'number') return { ok: false, error: len };
    const end = off + FRAME_HEADER_BYTES + len;
    if (end > buf.byteLength) {
      return { ok: false, error: new FrameError('FRAME_TRUNCATED', 'message ends inside a frame payload') };
    }
    frames.push({
      type: buf[off] as FrameType,
      flags: buf[off + 1]!,
      streamId: readU32(buf, off + 2),
      payload: buf.subarray(off + FRAME_HEADER_BYTES, end),
    });
    off = end;
  }
  return { ok: true, frames };
}

/**
 * Incremental decoder for a byte stream cut at arbitrary points.
 * Feed chunks with `push`; each call returns the frames completed so far.
 * After an error the decoder stays failed.
 */
export class FrameDecoder {
  private pending: Uint8Array = new Uint8Array(0);
  private failed: FrameError | undefined;

  constructor(private readonly maxPayload = DEFAULT_MAX_PAYLOAD_BYTES) {}

  push(chunk: Uint8Array): DecodeResult {
    if (this.failed) return { ok: false, error: this.failed };
    const buf = this.pending.byteLength === 0 ? chunk : concat(this.pending, chunk);
    const frames: Frame[] = [];
    let off = 0;
    while (buf.byteLength - off >= FRAME_HEADER_BYTES) {
      const len = checkHeader(buf, off, this.maxPayload);
      if (typeof len !== 'number') {
        this.failed = len;
        return { ok: false, error: len };
      }
      const end = off + FRAME_HEADER_BYTES + len;
      if (end > buf.byteLength) break;
      frames.push({
        type: buf[off] as FrameType,
        flags: buf[off + 1]!,
        streamId: readU32(buf, off + 2),
        // Copy: the caller may reuse its chunk buffers.
        payload: buf.slice(off + FRAME_HEADER_BYTES, end),
      });
      off = end;
    }
    this.pending = buf.slice(off);
    return { ok: true, frames };
  }

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.pending.byteLength;
  }

  /** Call at end of input: leftover bytes mean the stream was cut inside a frame. */
  end(): FrameError | undefined {
    if (this.failed) return this.failed;
    if (this.pending.byteLength > 0) return new FrameError('FRAME_TRUNCATED', 'input ended inside a frame');
    return undefined;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/** u32 big-endian payload of a Window frame. */
export function encodeWindow(streamId: number, increment: number): Uint8Array {
  const p = new Uint8Array(4);
  p[0] = increment >>> 24;
  p[1] = (increment >>> 16) & 0xff;
  p[2] = (increment >>> 8) & 0xff;
  p[3] = increment & 0xff;
  return encodeFrame(FrameType.Window, streamId, p);
}

/** Reset frame: the payload is the reason code as ASCII text (e.g. `BAD_REQUEST_HEAD`). */
export function encodeReset(streamId: number, code: string): Uint8Array {
  return encodeFrame(FrameType.Reset, streamId, encoder.encode(code));
}

/** Read a Window increment; undefined when the payload is not exactly 4 bytes. */
export function readWindow(payload: Uint8Array): number | undefined {
  return payload.byteLength === 4 ? readU32(payload, 0) : undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

/** WsClose payload: u16 code then UTF-8 reason (at most 123 bytes, as in RFC 6455 §5.5). */
export function encodeWsClose(streamId: number, code: number, reason: string): Uint8Array {
  const r = encoder.encode(reason).subarray(0, 123);
  const p = new Uint8Array(2 + r.byteLength);
  p[0] = (code >>> 8) & 0xff;
  p[1] = code & 0xff;
  p.set(r, 2);
  return encodeFrame(FrameType.WsClose, streamId, p);
}

export function readWsClose(payload: Uint8Array): { code: number; reason: string } {
  if (payload.byteLength < 2) return { code: 1005, reason: '' };
  return { code: (payload[0]! << 8) | payload[1]!, reason: decoder.decode(payload.subarray(2)) };
}

export function encodeText(s: string): Uint8Array {
  return encoder.encode(s);
}

export function decodeText(b: Uint8Array): string {
  return decoder.decode(b);
}
