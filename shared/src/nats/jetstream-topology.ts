import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { envInt } from '../config/load-config.ts';
import { WingmanError } from '../errors/catalogue.ts';
import { ENVELOPE_ENCODINGS } from '../events/envelope-encoding.ts';

/** Subjects and names of the event pipeline. */
export const Topology = {
  eventsStream: 'EVENTS',
  eventsSubject: (relayId: string) => `wingman.events.${relayId}`,
  eventsSubjects: 'wingman.events.>',
  dlqStream: 'EVENTS_DLQ',
  dlqSubject: 'wingman.dlq.events',
  ingestConsumer: 'ingest',
  /** Header marking envelopes the relay replayed from its disk spool: ingest checks their events against what is stored. */
  replayedHeader: 'Wingman-Replayed',
  /** How an envelope's bytes are encoded (envelope-encoding.ts); absent for plain JSON. */
  encodingHeader: 'Content-Encoding',
  /** Header carrying the reason on DLQ messages. */
  dlqReasonHeader: 'Wingman-Dlq-Reason',
  /** On a DLQ message whose payload was cut to fit NATS's max_payload: the payload's full size in bytes. */
  dlqTruncatedHeader: 'Wingman-Dlq-Truncated',
  /** Request/reply subject of ingest's read-only SQL service. */
  sqlSubject: 'wingman.ingest.sql',
  /** Shared state (docs/events.md): session directory, API keys, domains, shares, abuse decisions. */
  kvBuckets: ['sessions', 'api_keys', 'domains', 'shares', 'abuse_decisions'],
} as const;

/** NATS settings both services read (docs/configuration.md). */
export const natsConfigShape = {
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  EVENTS_MAX_AGE_MS: envInt(7 * 24 * 60 * 60_000, 60_000),
  EVENTS_MAX_BYTES: envInt(10 * 1024 ** 3, 1024 * 1024),
  DLQ_MAX_AGE_MS: envInt(30 * 24 * 60 * 60_000, 60_000),
  /** Window in which a repeated Nats-Msg-Id is stored only once. */
  DUPLICATE_WINDOW_MS: envInt(10 * 60_000, 1000),
  JS_REPLICAS: envInt(1, 1, 5),
  /** How the relay encodes envelopes on the wire (envelope-encoding.ts); ingest reads every encoding. */
  EVENT_ENCODING: z.enum(ENVELOPE_ENCODINGS).default('br'),
  /** Unacked messages are redelivered after this; ingest acks or naks each batch well within it. */
  ACK_WAIT_MS: envInt(10_000, 1000),
};
export type NatsConfig = { [K in keyof typeof natsConfigShape]: z.output<(typeof natsConfigShape)[K]> };

const nanos = (ms: number) => ms * 1_000_000;

export function streamConfigs(c: NatsConfig): (Partial<StreamConfig> & { name: string })[] {
  return [
    {
      name: Topology.eventsStream,
      subjects: [Topology.eventsSubjects],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(c.EVENTS_MAX_AGE_MS),
      max_bytes: c.EVENTS_MAX_BYTES,
      duplicate_window: nanos(c.DUPLICATE_WINDOW_MS),
      num_replicas: c.JS_REPLICAS,
    },
    {
      name: Topology.dlqStream,
      subjects: [Topology.dlqSubject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(c.DLQ_MAX_AGE_MS),
      max_bytes: Math.min(c.EVENTS_MAX_BYTES, 1024 ** 3),
      // Ingest names each entry (Nats-Msg-Id), so a batch it publishes again adds nothing.
      duplicate_window: nanos(c.DUPLICATE_WINDOW_MS),
      num_replicas: c.JS_REPLICAS,
    },
  ];
}

/** nats-server cannot reserve a stream's max_bytes: more disk (or a lower limit) is needed. */
export class JetStreamStorageError extends WingmanError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('JETSTREAM_STORAGE', message, options);
    this.name = 'JetStreamStorageError';
  }
}

/** JetStream's "insufficient storage resources available" (err_code 10047), said in terms of our config. */
function storageError(
  err: unknown,
  cfg: { name: string; max_bytes?: number },
): JetStreamStorageError | undefined {
  if (!(err instanceof JetStreamApiError) || err.code !== 10047) return undefined;
  const gib = ((cfg.max_bytes ?? 0) / 1024 ** 3).toFixed(2);
  return new JetStreamStorageError(
    `nats-server cannot reserve ${gib} GiB for stream ${cfg.name} (its max_bytes, set by EVENTS_MAX_BYTES): ` +
      'its JetStream file store limit is lower. Unless max_file_store is set, nats-server takes 75% of ' +
      'the disk that is free when it starts. Free disk space, lower EVENTS_MAX_BYTES, or raise max_file_store.',
    { cause: err },
  );
}

/** Update a stream to `cfg`, or create it if nats-server has none of that name. */
async function putStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
    await jsm.streams.add(cfg);
    return;
  }
  await jsm.streams.update(cfg.name, cfg);
}

/**
 * Create or update the streams, the ingest consumer and the KV buckets.
 * Idempotent: both services run it at start, and `npm run migrate` alone.
 */
export async function migrateJetStream(
  nc: NatsConnection,
  jsm: JetStreamManager,
  c: NatsConfig,
): Promise<void> {
  for (const cfg of streamConfigs(c)) {
    await putStream(jsm, cfg).catch((err: unknown) => {
      throw storageError(err, cfg) ?? err;
    });
  }
  const consumer = {
    durable_name: Topology.ingestConsumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(c.ACK_WAIT_MS),
    max_ack_pending: 50_000,
    max_waiting: 64,
  };
  try {
    await jsm.consumers.info(Topology.eventsStream, Topology.ingestConsumer);
    await jsm.consumers.update(Topology.eventsStream, Topology.ingestConsumer, consumer);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
    await jsm.consumers.add(Topology.eventsStream, consumer);
  }
  const kvm = new Kvm(nc);
  for (const bucket of Topology.kvBuckets) await kvm.create(bucket, { history: 5, replicas: c.JS_REPLICAS });
}
