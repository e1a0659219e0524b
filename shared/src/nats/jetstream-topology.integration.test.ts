import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { natsConnect, startNats } from '../../../test/helpers/pipeline.ts';
import { JetStreamStorageError, migrateJetStream, natsConfigShape, Topology } from './jetstream-topology.ts';

const natsConfigSchema = z.object(natsConfigShape);

describe('migrateJetStream against a nats-server with little storage (real nats-server)', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('a stream bigger than the server can hold is a typed error that names EVENTS_MAX_BYTES; a smaller one migrates', async () => {
    // 256 MiB of file store: far below the default EVENTS_MAX_BYTES (10 GiB).
    const nats = await startNats({ config: 'jetstream { max_file_store: 268435456 }' });
    cleanup.push(() => nats.stop('SIGKILL'));
    const nc = await natsConnect(nats.url);
    cleanup.push(() => nc.close());
    const jsm = await jetstreamManager(nc);

    const tooBig = natsConfigSchema.parse({ NATS_URL: nats.url });
    const err = await migrateJetStream(nc, jsm, tooBig).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JetStreamStorageError);
    expect((err as JetStreamStorageError).code).toBe('JETSTREAM_STORAGE');
    expect((err as Error).message).toMatch(/cannot reserve 10\.00 GiB for stream EVENTS .*EVENTS_MAX_BYTES/);

    const fits = natsConfigSchema.parse({ NATS_URL: nats.url, EVENTS_MAX_BYTES: String(64 * 1024 ** 2) });
    await migrateJetStream(nc, jsm, fits);
    expect((await jsm.streams.info('EVENTS')).config.max_bytes).toBe(64 * 1024 ** 2);
  });

  it('a DLQ stream made before it had a duplicate window gets the configured one', async () => {
    const nats = await startNats();
    cleanup.push(() => nats.stop('SIGKILL'));
    const nc = await natsConnect(nats.url);
    cleanup.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    // As earlier versions created it: JetStream's default window, 2 minutes.
    await jsm.streams.add({ name: Topology.dlqStream, subjects: [Topology.dlqSubject] });
    expect((await jsm.streams.info(Topology.dlqStream)).config.duplicate_window).toBe(120 * 1e9);

    const config = natsConfigSchema.parse({ NATS_URL: nats.url, EVENTS_MAX_BYTES: String(64 * 1024 ** 2) });
    await migrateJetStream(nc, jsm, config);
    const window = config.DUPLICATE_WINDOW_MS * 1e6;
    expect(window).toBe(600 * 1e9);
    expect((await jsm.streams.info(Topology.dlqStream)).config.duplicate_window).toBe(window);
    expect((await jsm.streams.info(Topology.eventsStream)).config.duplicate_window).toBe(window);
  });
});
