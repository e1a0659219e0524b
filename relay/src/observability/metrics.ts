import { RelayMetrics } from '@wingman/shared';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The relay's Prometheus metrics, registered on a registry of its own. */
export function createRelayMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wingman_relay_' });
  const m = {
    registry,
    activeSessions: new Gauge({
      name: RelayMetrics.activeSessions,
      help: 'Sessions alive on this relay (connected or within the resume grace period)',
      registers: [registry],
    }),
    tunnelConnections: new Gauge({
      name: RelayMetrics.tunnelConnections,
      help: 'Open tunnel client WebSocket connections',
      registers: [registry],
    }),
    requests: new Counter({
      name: RelayMetrics.requestsTotal,
      help: 'Visitor requests answered, by status class',
      labelNames: ['status_class'] as const,
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: RelayMetrics.requestDuration,
      help: 'Visitor request duration from first byte in to last byte out',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    bytesIn: new Counter({
      name: RelayMetrics.bytesIn,
      help: 'Visitor request body bytes received',
      registers: [registry],
    }),
    bytesOut: new Counter({
      name: RelayMetrics.bytesOut,
      help: 'Response body bytes sent to visitors',
      registers: [registry],
    }),
    websocketStreams: new Gauge({
      name: RelayMetrics.websocketStreams,
      help: 'Open visitor WebSocket streams',
      registers: [registry],
    }),
    errors: new Counter({
      name: RelayMetrics.errorsTotal,
      help: 'Errors by code (visitor error codes and tunnel protocol errors)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    inflightStreams: new Gauge({
      name: RelayMetrics.inflightStreams,
      help: 'HTTP streams in flight across all tunnels',
      registers: [registry],
    }),
    draining: new Gauge({
      name: RelayMetrics.draining,
      help: '1 while the relay drains before shutdown',
      registers: [registry],
    }),
    eventsPublished: new Counter({
      name: 'wingman_relay_events_published_total',
      help: 'Events stored in JetStream',
      registers: [registry],
    }),
    envelopesPublished: new Counter({
      name: 'wingman_relay_envelopes_published_total',
      help: 'Event envelopes stored in JetStream',
      registers: [registry],
    }),
    publishLatency: new Histogram({
      name: 'wingman_relay_publish_latency_seconds',
      help: 'JetStream publish round trip per envelope',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    bufferDepth: new Gauge({
      name: 'wingman_relay_event_buffer_depth',
      help: 'Events in memory waiting to publish',
      registers: [registry],
    }),
    spoolBytes: new Gauge({
      name: 'wingman_relay_spool_bytes',
      help: 'Bytes of event envelopes in the disk spool',
      registers: [registry],
    }),
    eventsDropped: new Counter({
      name: 'wingman_relay_events_dropped_total',
      help: 'Events dropped because the spool was full',
      registers: [registry],
    }),
    threadBoosts: new Counter({
      name: 'wingman_relay_event_thread_boosts_total',
      help: 'Times the NATS thread (EVENT_THREAD_SCHED=idle) fell behind and ran under SCHED_BATCH until it caught up',
      registers: [registry],
    }),
  };
  // Pre-create the status-class series so dashboards see zeros, not gaps.
  for (const c of ['1xx', '2xx', '3xx', '4xx', '5xx']) m.requests.inc({ status_class: c }, 0);
  return m;
}

export type RelayMetricsSet = ReturnType<typeof createRelayMetrics>;

const CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export function statusClass(status: number): (typeof CLASSES)[number] {
  return CLASSES[Math.min(5, Math.max(1, Math.floor(status / 100)))]!;
}
