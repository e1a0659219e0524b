import { Writable } from 'node:stream';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  decodeEnvelope,
  type Envelope,
  envelopeSchema,
  migrateJetStream,
  natsConfigShape,
  Topology,
} from '@wingman/shared';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { requestCompletedInput } from '../../../test/fixtures/events.ts';
import { eventually, freePort, natsConnect, startNats } from '../../../test/helpers/pipeline.ts';
import { testPublisher } from '../../../test/helpers/publisher.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { BOOST_FILL, linkNats, restartDelayMs, shouldBoost, UNBOOST_FILL } from './nats-link.ts';
import type { EventPublisher } from './publisher.ts';
import { type EventSink, jetStreamSink } from './sink.ts';
import { Spool } from './spool.ts';

const eventCount = (envelopes: Envelope[]) => envelopes.reduce((n, e) => n + e.events.length, 0);
const agentsOf = (envelopes: Envelope[]) =>
  envelopes.flatMap((e) => e.events.map((ev) => (ev as { user_agent: string }).user_agent));

/** Every message stored in the EVENTS stream, in stream order: its envelope, Content-Encoding and size. */
async function storedMessages(
  natsUrl: string,
): Promise<{ envelope: Envelope; encoding: string; bytes: number; jsonBytes: number }[]> {
  const nc = await natsConnect(natsUrl);
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(Topology.eventsStream);
    const out = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(Topology.eventsStream, { seq });
      if (!m) continue;
      const encoding = m.header.get(Topology.encodingHeader);
      const decoded = decodeEnvelope(m.data, encoding);
      if (!decoded.ok) throw new Error(decoded.error);
      const envelope = envelopeSchema.parse(JSON.parse(Buffer.from(decoded.json).toString('utf8')));
      out.push({ envelope, encoding, bytes: m.data.byteLength, jsonBytes: decoded.json.byteLength });
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Every envelope stored in the EVENTS stream, in stream order. */
async function storedEnvelopes(natsUrl: string): Promise<Envelope[]> {
  return (await storedMessages(natsUrl)).map((m) => m.envelope);
}

/** A logger at error level that keeps the `restartInMs` of each "thread exited" line. */
function restartLog() {
  const restarts: number[] = [];
  const lines = new Writable({
    write(chunk, _enc, done) {
      const line = JSON.parse(String(chunk)) as { restartInMs?: number };
      if (line.restartInMs !== undefined) restarts.push(line.restartInMs);
      done();
    },
  });
  return { restarts, log: pino({ level: 'error' }, lines) };
}

describe('linkNats: publishing from a worker thread (real nats-server, real worker thread)', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function setUp(env: Record<string, string> = {}) {
    const nats = await startNats();
    cleanup.push(() => nats.stop('SIGKILL'));
    const config = z.object(natsConfigShape).parse({ NATS_URL: nats.url, ...env });
    const spool = new Spool(tempDir('wingman-link-spool-'), 64 * 1024 * 1024);
    // Envelopes fill their 16 KiB before their 50 events: full ones, in shared memory, are what
    // the relay hands the thread.
    const { pub: publisher } = testPublisher(
      spool,
      { maxEvents: 50, maxEnvelopeBytes: 16 * 1024, maxAgeMs: 20, publishTimeoutMs: 2000 },
      'relay-link',
    );
    const { restarts, log } = restartLog();
    const link = linkNats(config, publisher, log, 'normal');
    cleanup.push(() => link.close());
    cleanup.push(() => publisher.close(2000));
    return { nats, publisher, link, spool, restarts };
  }

  /** Emit `n` request events whose user agents are `${tag}-0` … and return those agents. */
  function emitTagged(publisher: EventPublisher, tag: string, n: number): string[] {
    const agents = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
    for (const user_agent of agents) publisher.emit(requestCompletedInput({ user_agent }));
    return agents;
  }

  it('every event reaches JetStream once and in order, and close() ends the thread', async () => {
    const { nats, publisher, link } = await setUp();
    // Connected first, so the envelopes go from memory to the thread, not by way of the spool.
    await eventually(async () => link.connected, Boolean);
    const sent = emitTagged(publisher, 'a', 420);
    const envelopes = await eventually(
      () => storedEnvelopes(nats.url),
      (e) => eventCount(e) >= sent.length,
    );
    expect(agentsOf(envelopes)).toEqual(sent);
    expect(
      new Set(envelopes.flatMap((e) => e.events.map((ev) => (ev as { event_id: string }).event_id))).size,
    ).toBe(sent.length);
    // Stored compressed by default (EVENT_ENCODING=br), and much smaller than their JSON.
    const stored = await storedMessages(nats.url);
    expect(stored.map((m) => m.encoding)).toEqual(stored.map(() => 'br'));
    const sum = (f: (m: (typeof stored)[number]) => number) => stored.reduce((n, m) => n + f(m), 0);
    expect(sum((m) => m.bytes)).toBeLessThan(sum((m) => m.jsonBytes) / 4);

    const thread = link.thread!;
    const exited = new Promise<number>((r) => thread.once('exit', r));
    await link.close();
    await exited;
    expect(link.thread).toBeUndefined();
    expect(link.connected).toBe(false);
  });

  it('with EVENT_ENCODING=none, envelopes are stored as plain JSON without a Content-Encoding', async () => {
    const { nats, publisher, link } = await setUp({ EVENT_ENCODING: 'none' });
    await eventually(async () => link.connected, Boolean);
    const sent = emitTagged(publisher, 'plain', 120);
    const stored = await eventually(
      () => storedMessages(nats.url),
      (m) => eventCount(m.map((x) => x.envelope)) >= sent.length,
    );
    expect(agentsOf(stored.map((m) => m.envelope))).toEqual(sent);
    expect(stored.map((m) => [m.encoding, m.bytes])).toEqual(stored.map((m) => ['', m.jsonBytes]));
  });

  it('a worker thread that dies is replaced; events from meanwhile spool and are replayed, none lost or doubled', async () => {
    const { nats, publisher, link, spool, restarts } = await setUp();
    await eventually(async () => link.connected, Boolean);
    const first = emitTagged(publisher, 'before', 200);
    await eventually(
      () => storedEnvelopes(nats.url),
      (e) => e.length > 0,
    );

    const dead = link.thread!;
    await dead.terminate();
    // While no thread holds the connection, sealed envelopes go to the disk spool.
    const during = emitTagged(publisher, 'during', 300);
    await eventually(
      async () => spool.bytes,
      (b) => b > 0,
    );
    await eventually(
      async () => link.thread !== undefined && link.thread !== dead && link.connected,
      Boolean,
    );
    const after = emitTagged(publisher, 'after', 100);

    const expected = [...first, ...during, ...after];
    const envelopes = await eventually(
      () => storedEnvelopes(nats.url),
      (e) => eventCount(e) >= expected.length && spool.isEmpty,
    );
    const agents = agentsOf(envelopes);
    expect(agents.toSorted()).toEqual(expected.toSorted());
    // Replayed in order: the spooled events come before the ones emitted after the restart.
    expect(agents.indexOf('during-299')).toBeLessThan(agents.indexOf('after-0'));

    // The new thread reached NATS, so a later death is the first in a row again: 1 s, not 2.
    await link.thread!.terminate();
    await eventually(
      async () => restarts.length,
      (n) => n === 2,
    );
    expect(restarts).toEqual([1000, 1000]);
  });

  it('a thread that keeps dying before it reaches NATS is restarted later each time', async () => {
    // No nats-server at this address (a free port), so no thread ever reports NATS up and the
    // deaths count in a row.
    const config = z.object(natsConfigShape).parse({ NATS_URL: `nats://127.0.0.1:${await freePort()}` });
    const { pub: publisher } = testPublisher(new Spool(tempDir('wingman-link-spool-'), 1 << 20));
    const { restarts, log } = restartLog();
    const link = linkNats(config, publisher, log, 'normal');
    cleanup.push(() => publisher.close(100));
    cleanup.push(() => link.close());
    for (let i = 0; i < 3; i++) {
      const t = await eventually(async () => link.thread, Boolean);
      await t!.terminate();
      await eventually(
        async () => restarts.length,
        (n) => n > i,
      );
    }
    expect(restarts).toEqual([1000, 2000, 4000]);
  }, 20_000);

  it('a thread whose JetStream set-up fails ends, and is restarted with the same backoff', async () => {
    // 256 MiB of file store: the default EVENTS_MAX_BYTES (10 GiB) cannot be created, so every
    // thread connects, fails to migrate and ends.
    const nats = await startNats({ config: 'jetstream { max_file_store: 268435456 }' });
    cleanup.push(() => nats.stop('SIGKILL'));
    const config = z.object(natsConfigShape).parse({ NATS_URL: nats.url });
    const { pub: publisher } = testPublisher(new Spool(tempDir('wingman-link-spool-'), 1 << 20));
    const { restarts, log } = restartLog();
    const link = linkNats(config, publisher, log, 'normal');
    cleanup.push(() => publisher.close(100));
    cleanup.push(() => link.close());
    await eventually(
      async () => restarts.length,
      (n) => n >= 2,
      15_000,
    );
    expect(restarts.slice(0, 2)).toEqual([1000, 2000]);
    expect(link.connected).toBe(false);
  }, 20_000);

  it('restart delays double from 1 s and stop at 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(restartDelayMs)).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });
});

describe('envelope buffers reused once published (real nats-server)', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  for (const encoding of ['none', 'br'] as const) {
    it(`reuses a published envelope's buffer, never one whose publish failed, and stores every envelope intact (${encoding})`, async () => {
      const nats = await startNats();
      cleanup.push(() => nats.stop('SIGKILL'));
      const nc = await natsConnect(nats.url);
      cleanup.push(() => nc.close());
      const config = z.object(natsConfigShape).parse({ NATS_URL: nats.url, EVENT_ENCODING: encoding });
      await migrateJetStream(nc, await jetstreamManager(nc), config);
      // The real JetStream sink (on this thread), wrapped to see which buffer each envelope is in and
      // to make the fifth publish fail before it reaches NATS (fault injection).
      const real = jetStreamSink(jetstream(nc), encoding);
      const buffers: ArrayBufferLike[] = [];
      let failedAt = -1;
      const sink: EventSink = {
        async publish(subject, data, opts) {
          if (typeof data !== 'string') buffers.push(data.buffer);
          if (buffers.length === 5 && failedAt < 0) {
            failedAt = buffers.length - 1;
            throw new Error('injected: publish failed');
          }
          await real.publish(subject, data, opts);
        },
      };
      const { pub } = testPublisher(new Spool(tempDir('wingman-pool-'), 1 << 24), {
        maxEvents: 100,
        maxEnvelopeBytes: 16 * 1024,
      });
      cleanup.push(() => pub.close(1000));
      pub.setSink(sink);
      const agents: string[] = [];
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 100; i++) {
          agents.push(`pool-${encoding}-${round}-${i}`);
          pub.emit(requestCompletedInput({ user_agent: agents.at(-1)! }));
        }
        await new Promise((r) => setTimeout(r, 80));
      }
      // Every event stored once, in order: no envelope was overwritten while it was still in use.
      await eventually(
        async () => agentsOf(await storedEnvelopes(nats.url)).length,
        (n) => n >= agents.length,
        20_000,
      );
      expect(agentsOf(await storedEnvelopes(nats.url))).toEqual(agents);
      const shared = buffers.filter((b) => b instanceof SharedArrayBuffer);
      expect(shared.length).toBeGreaterThan(20);
      // Reused: a few buffers carried every in-memory envelope.
      expect(new Set(shared).size).toBeLessThanOrEqual(6);
      // The buffer whose publish failed (nats.js might still hold it) is never written again.
      expect(failedAt).toBeGreaterThanOrEqual(0);
      expect(buffers.slice(failedAt + 1)).not.toContain(buffers[failedAt]);
    });
  }
});

describe('shouldBoost: when an idle NATS thread runs under SCHED_BATCH', () => {
  const at = (queueFill: number, spooled = false) => ({ queueFill, spooled });
  it('is raised when the queue reaches BOOST_FILL or a replay waits, only while NATS is up', () => {
    expect(shouldBoost(at(BOOST_FILL - 0.01), true, false)).toBe(false);
    expect(shouldBoost(at(BOOST_FILL), true, false)).toBe(true);
    expect(shouldBoost(at(0, true), true, false)).toBe(true);
    // NATS down: the spool fills by design and there is nothing to publish to.
    expect(shouldBoost(at(1, true), false, false)).toBe(false);
  });
  it('stays raised until the queue is below UNBOOST_FILL and the spool is empty (hysteresis)', () => {
    expect(shouldBoost(at(BOOST_FILL - 0.01), true, true)).toBe(true);
    expect(shouldBoost(at(UNBOOST_FILL), true, true)).toBe(true);
    expect(shouldBoost(at(0, true), true, true)).toBe(true);
    expect(shouldBoost(at(UNBOOST_FILL - 0.01), true, true)).toBe(false);
    expect(shouldBoost(at(0), false, true)).toBe(false);
  });
});
