import { createLogger } from '@wingman/shared';
import { EventPublisher, type PublisherLimits } from '../../relay/src/events/publisher.ts';
import type { Spool } from '../../relay/src/events/spool.ts';

/**
 * A relay EventPublisher for tests, with no sink set: until one is (setSink, or linkNats), every
 * sealed envelope goes to `spool`. Small test limits unless `limits` overrides them; `c.dropped`
 * counts the events it drops, the other metrics go nowhere, and it logs nothing.
 */
export function testPublisher(spool: Spool, limits: Partial<PublisherLimits> = {}, relayId = 'relay-t') {
  const c = { dropped: 0 };
  const noop = { inc() {}, observe() {}, set() {} };
  const metrics = {
    eventsPublished: noop,
    envelopesPublished: noop,
    publishLatency: noop,
    bufferDepth: noop,
    spoolBytes: noop,
    eventsDropped: { inc: (n = 1) => (c.dropped += n) },
  };
  const pub = new EventPublisher(
    relayId,
    spool,
    {
      maxEvents: 1000,
      maxEnvelopeBytes: 100_000,
      maxAgeMs: 50,
      maxBufferBytes: 1 << 20,
      publishTimeoutMs: 1000,
      ...limits,
    },
    metrics,
    createLogger('t', 'silent'),
  );
  return { pub, c };
}
