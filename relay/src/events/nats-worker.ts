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
import { migrateJetStream, type NatsConfig } from '@wingman/shared';
import type { FromNatsWorker, ToNatsWorker } from './nats-link.ts';
import { type EventSink, jetStreamSink } from './sink.ts';

const port = parentPort;
if (!port) throw new Error('nats-worker.ts runs only as a worker thread (see nats-link.ts)');
const config = (workerData as { config: NatsConfig }).config;
const send = (m: FromNatsWorker) => port.postMessage(m);

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
