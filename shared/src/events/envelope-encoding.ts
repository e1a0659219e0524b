import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

/**
 * How an envelope's bytes are encoded on the NATS wire and in JetStream, named in the message's
 * `Content-Encoding` header (Topology.encodingHeader). No header: the envelope's JSON as is.
 *
 * `br` is Brotli at quality 1. Envelopes are JSON with the same keys in every event: an envelope of
 * varied request events (real user agents, ids in paths, many IPs) shrinks ~7x for ~1 µs of CPU per
 * event, the benchmarks' more repetitive ones ~18x for ~0.35 µs (micro-benchmarks).
 * The bytes saved are worth more than that: nats-server 2.9 grows a block's write cache by
 * appending each message while a consumer reads along, so it copied and page-faulted every stored
 * byte several times over. In bench:pipeline at 20k events/s nats-server used 2.75–3.19 µs of CPU
 * per event on plain envelopes and 0.81–0.88 on compressed ones, and ingest, which reads far fewer
 * bytes off its socket, used less too (docs/performance.md, twelfth session).
 */
export const ENVELOPE_ENCODINGS = ['br', 'none'] as const;
export type EnvelopeEncoding = (typeof ENVELOPE_ENCODINGS)[number];

/** Largest envelope ingest inflates: well above any relay's (EVENT_ENVELOPE_MAX_BYTES is at most 8 MiB). */
export const MAX_INFLATED_ENVELOPE_BYTES = 32 * 1024 * 1024;

/** The envelope's bytes as they go on the wire, and the `Content-Encoding` to send with them (none for `none`). */
export function encodeEnvelope(
  json: Uint8Array | string,
  encoding: EnvelopeEncoding,
): { data: Uint8Array | string; contentEncoding?: 'br' } {
  if (encoding === 'none') return { data: json };
  const input = typeof json === 'string' ? Buffer.from(json) : json;
  const data = brotliCompressSync(input, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 1,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: input.byteLength,
    },
  });
  return { data, contentEncoding: 'br' };
}

export type DecodedEnvelope = { ok: true; json: Uint8Array } | { ok: false; error: string };

/**
 * An envelope's JSON bytes from what came off the wire with `contentEncoding` (the header's
 * value, undefined when absent). Never throws: an unknown encoding, corrupt data or an envelope
 * that would inflate past MAX_INFLATED_ENVELOPE_BYTES is an error with its reason.
 */
export function decodeEnvelope(data: Uint8Array, contentEncoding: string | undefined): DecodedEnvelope {
  if (contentEncoding === undefined || contentEncoding === '' || contentEncoding === 'identity')
    return { ok: true, json: data };
  if (contentEncoding !== 'br')
    return { ok: false, error: `unknown Content-Encoding ${JSON.stringify(contentEncoding)}` };
  try {
    return { ok: true, json: brotliDecompressSync(data, { maxOutputLength: MAX_INFLATED_ENVELOPE_BYTES }) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return {
      ok: false,
      error:
        e.code === 'ERR_BUFFER_TOO_LARGE'
          ? `envelope inflates past ${MAX_INFLATED_ENVELOPE_BYTES} bytes`
          : `cannot inflate (br): ${e.message}`,
    };
  }
}
