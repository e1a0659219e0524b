/**
 * npm run bench:pipeline [-- --events 300000] [-- --rate 20000] [-- --smoke] [-- --trace]
 *
 * The event pipeline with real parts: the relay's own EventPublisher (batched
 * envelopes, Nats-Msg-Id) -> nats-server (JetStream, file storage) -> the
 * ingest worker as its own process -> embedded chDB. Two phases, so the
 * publisher (in this process) does not share the 2 cores with ingest while
 * ingest's capacity is measured:
 *   1. capacity: `events` are published while ingest is stopped; ingest then
 *      starts and drains them. events_per_s = events / (last - first insert).
 *   2. lag: with ingest running, events are published at `rate` per second for
 *      a few seconds; lag = ingested_at - ts per event.
 * Exactly-once is checked over both phases. ingest_cpu_us_per_event is ingest's CPU (all its
 * threads) per event in phase 1's drain, ingest_cpu_us_per_event_at_rate the same in phase 2.
 * publisher_cpu_us_per_event is the relay's side of phase 1: this process's CPU (user + system)
 * per event emitted and published. nats_cpu_us_per_event_at_rate is nats-server's CPU per event in
 * phase 2 (storing envelopes and delivering them to ingest). EVENT_ENCODING picks the envelopes'
 * wire encoding as on the relay (`br` by default). Ingest runs as `npm start` runs it next to the relay, with
 * INGEST_SCHED=idle, unless INGEST_SCHED in the environment says otherwise.
 * Last line: one JSON object.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger, migrateJetStream, natsConfigShape } from '@wingman/shared';
import { loadIngestConfig } from '../ingest/src/config.ts';
import { EventPublisher } from '../relay/src/events/publisher.ts';
import { jetStreamSink } from '../relay/src/events/sink.ts';
import { Spool } from '../relay/src/events/spool.ts';
import { eventually, natsConnect, sql, startIngest, startNats } from '../test/helpers/pipeline.ts';
import { tempDir } from '../test/helpers/temp-dir.ts';
import { benchArgs, cpuMs, ingestSchedArg, round } from './harness.ts';

const ingestSched = ingestSchedArg(process.env.INGEST_SCHED);
const args = benchArgs({
  events: { type: 'string' },
  rate: { type: 'string' },
  trace: { type: 'boolean', default: false },
});
const total = Number(args.events ?? (args.smoke ? 20_000 : 300_000));
const rate = Number(args.rate ?? (args.smoke ? 5000 : 20_000));
const lagSeconds = args.smoke ? 2 : 8;
const RUN = `bench${Date.now().toString(36)}`;
/** Envelopes on the wire as the relay sends them: EVENT_ENCODING, read with the relay's own default. */
const encoding = natsConfigShape.EVENT_ENCODING.parse(process.env.EVENT_ENCODING);

/** Slowest JetStream publish (PubAck wait) seen by the bench's publishers, in ms. */
let slowestPublishMs = 0;

function makePublisher(nc: NatsConnection) {
  let spooledBytes = 0;
  const noop = { inc() {}, observe() {}, set() {} };
  const publisher = new EventPublisher(
    'bench-relay',
    new Spool(tempDir('wingman-bench-spool-'), 1024 ** 3),
    {
      maxEvents: 1000,
      maxEnvelopeBytes: 512 * 1024,
      maxAgeMs: 200,
      maxBufferBytes: 8 * 1024 * 1024,
      publishTimeoutMs: 5000,
    },
    {
      eventsPublished: noop,
      envelopesPublished: noop,
      publishLatency: {
        observe: (seconds: number) => {
          slowestPublishMs = Math.max(slowestPublishMs, seconds * 1000);
        },
      },
      spoolBytes: { set: (n: number) => (spooledBytes = Math.max(spooledBytes, n)) },
      eventsDropped: noop,
      bufferDepth: noop,
    },
    createLogger('bench', 'warn'),
  );
  publisher.setSink(jetStreamSink(jetstream(nc), encoding));
  let seq = 0;
  const emit = (phase: string) =>
    publisher.emit({
      type: 'request.completed',
      session_id: `${RUN}${phase}`,
      method: 'GET',
      host_kind: 'path',
      status: seq % 50 === 0 ? 404 : 200,
      duration_ms: 1 + (seq % 20),
      ttfb_ms: 1,
      bytes_in: 0,
      bytes_out: 512,
      path: '/items/:id',
      visitor_ip: `203.0.113.${seq++ % 250}`,
      user_agent: 'bench/1.0',
      referrer_host: '',
      server: 'nginx',
      powered_by: 'Express',
      error_code: '',
    });
  return { publisher, emit, spooledBytes: () => spooledBytes };
}

const nats = await startNats();
const nc = await natsConnect(nats.url);
// The streams must exist before phase 1 publishes (ingest, which would create them, starts later).
await migrateJetStream(nc, await jetstreamManager(nc), loadIngestConfig({ NATS_URL: nats.url }));
let ingest: Awaited<ReturnType<typeof startIngest>> | undefined;
let slowLag = false;
try {
  // Phase 1: fill the stream, then let ingest drain it.
  const p1 = makePublisher(nc);
  // This process's CPU while it emits and publishes (nothing else runs here meanwhile): the relay's
  // cost per event, from building the event object to JetStream's ack, with a real nats-server.
  const publishCpu0 = process.cpuUsage();
  for (let sent = 0; sent < total; ) {
    // Wait while the publisher's in-memory queue is half full: beyond it, envelopes would go
    // through the disk spool, which a relay with NATS up does not use (checked below).
    if (p1.publisher.queueFill > 0.5) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const n = Math.min(2000, total - sent);
    for (let i = 0; i < n; i++) p1.emit('c');
    sent += n;
    await new Promise((r) => setImmediate(r));
  }
  await p1.publisher.close(60_000);
  const publishCpu = process.cpuUsage(publishCpu0);
  if (p1.spooledBytes() > 0)
    console.error(
      `warning: phase 1 spooled ${p1.spooledBytes()} bytes to disk; publisher_cpu_us_per_event includes spool writes`,
    );
  // Debug level: two short lines per batch (a few per second), kept so a slow run can be explained.
  ingest = await startIngest(
    nats.url,
    { LOG_LEVEL: 'debug', INGEST_SCHED: ingestSched },
    process.env.INGEST_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/profi'] : [],
  );
  const drainStart = Date.now();
  const drainCpu0 = cpuMs(ingest.pid);
  const count = async (phase: string) =>
    Number(
      (
        await sql<{ c: string }>(nc, `SELECT count() AS c FROM requests WHERE session_id = '${RUN}${phase}'`)
      )[0]!.c,
    );
  /** Wait until `n` events of a phase are stored (or give up; the figures then show what is missing). */
  const stored = (phase: string, n: number, timeoutMs: number) =>
    eventually(
      () => count(phase),
      (c) => c >= n,
      timeoutMs,
      200,
    ).catch(() => undefined);
  await stored('c', total, 10 * 60_000);
  // CPU (all of ingest's threads: JavaScript, GC, chDB) per event drained; steadier than a rate.
  const drainCpuMs = cpuMs(ingest.pid) - drainCpu0;

  // Phase 2: steady load at `rate` with ingest running.
  const p2 = makePublisher(nc);
  const lagTotal = rate * lagSeconds;
  const steadyCpu0 = cpuMs(ingest.pid);
  const natsCpu0 = cpuMs(nats.pid);
  const t0 = performance.now();
  for (let sent = 0; sent < lagTotal; ) {
    const due = Math.min(lagTotal, Math.floor(((performance.now() - t0) / 1000) * rate));
    for (; sent < due; sent++) p2.emit('l');
    await new Promise((r) => setTimeout(r, 5));
  }
  await p2.publisher.close(60_000);
  await stored('l', lagTotal, 5 * 60_000);
  // Ingest's CPU per event at a steady rate: smaller batches than a drain, so a larger share of
  // each insert's fixed cost (parts, materialized views, merges) per event.
  const steadyCpuMs = cpuMs(ingest.pid) - steadyCpu0;
  // nats-server's CPU per event over the same stretch: storing each envelope and handing it to ingest.
  const natsCpuMs = cpuMs(nats.pid) - natsCpu0;
  await new Promise((r) => setTimeout(r, 1000));

  const stats = async (phase: string) =>
    (
      await sql<Record<string, string>>(
        nc,
        `SELECT count() AS rows, uniqExact(event_id) AS unique_events,
                quantile(0.5)(dateDiff('millisecond', ts, ingested_at)) AS lag_p50,
                quantile(0.99)(dateDiff('millisecond', ts, ingested_at)) AS lag_p99,
                toUnixTimestamp64Milli(max(ingested_at)) AS last_insert_ms
         FROM requests WHERE session_id = '${RUN}${phase}'`,
      )
    )[0]!;
  const cap = await stats('c');
  const lag = await stats('l');
  slowLag = Number(lag.lag_p99) > 2000;
  const events = total + lagTotal;
  const unique = Number(cap.unique_events) + Number(lag.unique_events);
  const rows = Number(cap.rows) + Number(lag.rows);
  process.stderr.write(
    `capacity: ${cap.unique_events}/${total} events drained in ${Number(cap.last_insert_ms) - drainStart} ms; lag at ${rate}/s: p50 ${lag.lag_p50} ms, p99 ${lag.lag_p99} ms\n`,
  );
  console.log(
    JSON.stringify({
      events,
      ingested: unique,
      lost: events - unique,
      duplicates: rows - unique,
      events_per_s: round(Number(cap.unique_events) / ((Number(cap.last_insert_ms) - drainStart) / 1000), 0),
      lag_p50_ms: round(Number(lag.lag_p50), 1),
      lag_p99_ms: round(Number(lag.lag_p99), 1),
      lag_at_events_per_s: rate,
      ingest_cpu_us_per_event: round((drainCpuMs * 1000) / total, 1),
      ingest_cpu_us_per_event_at_rate: round((steadyCpuMs * 1000) / lagTotal, 1),
      publisher_cpu_us_per_event: round((publishCpu.user + publishCpu.system) / total, 2),
      nats_cpu_us_per_event_at_rate: round((natsCpuMs * 1000) / lagTotal, 2),
      ingest_sched: ingestSched,
      encoding,
    }),
  );
} finally {
  // With --trace, or when the lag floor (p99 <= 2 s) was missed: ingest's per-batch timings (fetch,
  // plan, insert), to see which stage was slow, and its warnings and errors (a failed fetch leaves
  // messages to be redelivered after the ack wait).
  if (args.trace || slowLag)
    process.stderr.write(
      `slowest publish (PubAck wait): ${Math.round(slowestPublishMs)} ms; ingest:\n` +
        `${ingest?.lines.filter((l) => l.includes('"batch ') || /"level":[456]0/.test(l)).join('\n')}\n`,
    );
  await nc.close();
  await ingest?.stop();
  await nats.stop();
}
