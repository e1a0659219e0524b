import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Ingest's Prometheus metrics. */
export function createIngestMetrics() {
  const registry = new Registry();
  // Event-loop lag sampled every 100 ms, not prom-client's 10 ms: ingest is a batch worker that
  // idles between pulls, and the 10 ms timer woke its loop ~100 times a second for nothing (main
  // thread 11–12 ms of CPU per second while idle, against 8 with 100 ms; docs/performance.md).
  collectDefaultMetrics({ register: registry, prefix: 'wingman_ingest_', eventLoopMonitoringPrecision: 100 });
  const r = [registry];
  return {
    registry,
    lag: new Gauge({
      name: 'wingman_ingest_consumer_pending',
      help: 'Messages in the stream not yet delivered to ingest',
      registers: r,
    }),
    ackPending: new Gauge({
      name: 'wingman_ingest_consumer_ack_pending',
      help: 'Messages delivered but not yet acked',
      registers: r,
    }),
    batches: new Counter({
      name: 'wingman_ingest_batches_total',
      help: 'Batches inserted and acked',
      registers: r,
    }),
    events: new Counter({
      name: 'wingman_ingest_events_total',
      help: 'Valid events processed',
      registers: r,
    }),
    rowsInserted: new Counter({
      name: 'wingman_ingest_rows_inserted_total',
      help: 'Rows inserted, by table',
      labelNames: ['table'] as const,
      registers: r,
    }),
    insertDuration: new Histogram({
      name: 'wingman_ingest_insert_duration_seconds',
      help: 'ClickHouse insert duration, by table',
      labelNames: ['table'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    insertFailures: new Counter({
      name: 'wingman_ingest_insert_failures_total',
      help: 'Batches left unacked after a failed insert',
      registers: r,
    }),
    dlq: new Counter({
      name: 'wingman_ingest_dlq_total',
      help: 'Envelopes or events sent to the DLQ',
      registers: r,
    }),
    redeliveries: new Counter({
      name: 'wingman_ingest_redeliveries_total',
      help: 'Messages JetStream delivered again',
      registers: r,
    }),
  };
}
export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
