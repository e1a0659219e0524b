import type { JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { type EnvelopeEncoding, encodeEnvelope, Topology } from '@wingman/shared';

export interface PublishOptions {
  /** The envelope's id: its Nats-Msg-Id, so a retried publish is stored once. */
  msgID: string;
  timeoutMs: number;
  /** The envelope may be in JetStream already (a replay after a failed publish): ingest checks for stored events. */
  replayed: boolean;
}

/** Where the publisher sends sealed envelopes: JetStream, here or on the NATS worker thread. */
export interface EventSink {
  /** Resolves once JetStream has stored the envelope; rejects on any failure. */
  publish(subject: string, data: Uint8Array | string, opts: PublishOptions): Promise<void>;
}

/**
 * Publish straight through a JetStream client on this thread, each envelope encoded as
 * `encoding` (EVENT_ENCODING) and its Content-Encoding header set to match. The relay runs this on
 * its NATS worker thread, so the compression is off the event loop that serves visitors.
 */
export function jetStreamSink(js: JetStreamClient, encoding: EnvelopeEncoding): EventSink {
  return {
    async publish(subject, json, { msgID, timeoutMs, replayed }) {
      const h = natsHeaders();
      if (replayed) h.set(Topology.replayedHeader, '1');
      const { data, contentEncoding } = encodeEnvelope(json, encoding);
      if (contentEncoding) h.set(Topology.encodingHeader, contentEncoding);
      await js.publish(subject, data, { msgID, timeout: timeoutMs, headers: h });
    },
  };
}
