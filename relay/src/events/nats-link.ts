import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type Logger, migrateJetStream, type NatsConfig } from '@wingman/shared';
import type { EventPublisher } from './publisher.ts';

/**
 * Connect to NATS in the background and keep the publisher pointed at
 * JetStream while connected. The relay serves tunnels whether or not NATS is
 * up: until it is, events go to the spool.
 */
export function linkNats(
  config: NatsConfig,
  publisher: EventPublisher,
  log: Logger,
): { close(): Promise<void> } {
  let nc: NatsConnection | undefined;
  let closed = false;
  const ready = (async () => {
    nc = await connect({
      servers: config.NATS_URL,
      name: 'wingman-relay',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      waitOnFirstConnect: true,
    });
    if (closed) return;
    await migrateJetStream(nc, await jetstreamManager(nc), config);
    const js = jetstream(nc);
    publisher.setJetStream(js);
    log.info({ nats: config.NATS_URL }, 'event publisher connected to NATS');
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        publisher.setJetStream(undefined);
        log.warn('NATS disconnected; spooling events');
      } else if (s.type === 'reconnect') {
        publisher.setJetStream(js);
        log.info('NATS reconnected; replaying spooled events');
      }
    }
  })().catch((err: Error) => {
    if (!closed) log.error({ err: err.message }, 'NATS link failed; events stay in the spool');
  });
  return {
    async close() {
      closed = true;
      publisher.setJetStream(undefined);
      await nc?.drain().catch(() => {});
      await Promise.race([ready, new Promise((r) => setTimeout(r, 1000))]);
    },
  };
}
