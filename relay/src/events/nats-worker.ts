/**
 * The relay's NATS connection, on a worker thread of its own (started by nats-link.ts).
 *
 * Publishing a ~500 KB envelope is a socket write whose loopback or TCP work the kernel does
 * in the writing thread; on the relay's event loop it held up every visitor socket for that
 * long. Here it does not. The main thread seals envelopes and keeps the queue, the spool and the
 * retries; this thread only connects, keeps the JetStream topology, reports the link's state and
 * publishes what it is given.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { migrateJetStream, setSchedPolicy, threadId } from '@wingman/shared';
import type { FromNatsWorker, NatsWorkerData, ToNatsWorker } from './nats-link.ts';
import { type EventSink, jetStreamSink } from './sink.ts';

const port = parentPort;
if (!port) throw new Error('nats-worker.ts runs only as a worker thread (see nats-link.ts)');
const { config, sched } = workerData as NatsWorkerData;
const send = (m: FromNatsWorker) => port.postMessage(m);

// Compressing and publishing an envelope is ~1 ms of work that starts when the event loop hands
// it over (postMessage wakes this thread). At the default policy the kernel let this thread
// preempt the event loop right there: postMessage took 0.5 ms on average (p90 1.8–2.9 ms) in a
// loaded relay, against 0.1–0.2 ms with this thread under SCHED_BATCH (docs/performance.md).
// Under SCHED_IDLE (`idle`) it runs only on CPU time nothing else wants: its ~4 µs per event of
// Brotli and nats.js then no longer competes with the tunnel at all (docs/performance.md,
// sixteenth session).
if (sched !== 'normal') {
  const r = setSchedPolicy(sched, 'thread');
  send(
    'error' in r
      ? { type: 'sched', policy: 'normal', error: r.error }
      : { type: 'sched', policy: sched, tid: r.threads[0] },
  );
} else if (process.platform === 'linux') send({ type: 'sched', policy: 'normal', tid: threadId() });

let nc: NatsConnection | undefined;
let sink: EventSink | undefined;
let closing = false;

port.on('message', (m: ToNatsWorker) => {
  if (m.type === 'publish') {
    const { n, subject, data, opts } = m;
    if (!sink) {
      send({ type: 'published', n, error: 'not connected to NATS' });
      return;
    }
    sink.publish(subject, data, opts).then(
      () => send({ type: 'published', n }),
      (err: Error) => send({ type: 'published', n, error: err.message || String(err) }),
    );
  } else if (m.type === 'close') {
    closing = true;
    void (async () => {
      await nc?.drain().catch(() => {});
      // With the connection drained and the port closed, nothing keeps the thread alive: it exits.
      port.close();
    })();
  }
});

try {
  nc = await connect({
    servers: config.NATS_URL,
    name: 'wingman-relay',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    waitOnFirstConnect: true,
  });
  if (!closing) {
    await migrateJetStream(nc, await jetstreamManager(nc), config);
    sink = jetStreamSink(jetstream(nc), config.EVENT_ENCODING);
    send({ type: 'link', up: true, first: true });
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') send({ type: 'link', up: false, first: false });
      else if (s.type === 'reconnect') send({ type: 'link', up: true, first: false });
    }
  }
} catch (err) {
  // Say why, then end this thread: nats-link.ts starts a new one after its restart delay (which
  // grows while threads keep failing), so a JetStream set-up that fails now is tried again.
  if (!closing) send({ type: 'failed', error: (err as Error).message || String(err) });
  await nc?.close().catch(() => {});
  port.close();
}
