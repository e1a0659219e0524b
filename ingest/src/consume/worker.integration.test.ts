import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { type FetchOptions, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger, migrateJetStream, Topology } from '@wingman/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { envelopeJson, requestCompletedEvent } from '../../../test/fixtures/events.ts';
import { eventually, type NatsProc, natsConnect, startNats } from '../../../test/helpers/pipeline.ts';
import { loadIngestConfig } from '../config.ts';
import { createIngestMetrics } from '../observability/metrics.ts';
import { runMigrations } from '../sink/migrate.ts';
import { createWarehouse } from '../sink/warehouse.ts';
import { startWorker, type Worker } from './worker.ts';

describe('ingest worker (real nats-server, real chDB, in this process)', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('a pull that fails part-way keeps the messages it delivered: they are stored at once, not after the ack wait', async () => {
    const nats: NatsProc = await startNats();
    cleanup.push(() => nats.stop('SIGKILL'));
    const nc: NatsConnection = await natsConnect(nats.url);
    cleanup.push(() => nc.close());
    // A long ack wait: a message dropped by the worker would come back only after 30 s.
    const config = loadIngestConfig({
      NATS_URL: nats.url,
      CHDB_PATH: mkdtempSync(join(tmpdir(), 'wingman-worker-chdb-')),
      FETCH_BATCH: '2',
      ACK_WAIT_MS: '30000',
    });
    await migrateJetStream(nc, await jetstreamManager(nc), config);
    const ch: ClickHouseClient = await createWarehouse(config);
    cleanup.push(() => ch.close());
    await runMigrations(ch, { rawTtlDays: config.RAW_TTL_DAYS });

    const js = jetstream(nc);
    const envelopes = 6;
    const perEnvelope = 10;
    for (let e = 0; e < envelopes; e++) {
      const events = Array.from({ length: perEnvelope }, (_, i) =>
        requestCompletedEvent({ session_id: 'pullfail1', bytes_out: e * perEnvelope + i }),
      );
      await js.publish(Topology.eventsSubject('test-relay'), envelopeJson(`env-${e}`, events), {
        msgID: `env-${e}`,
      });
    }

    // Injected failure (named as such): the first pull delivers its messages and then fails, as
    // a pull does when the client misses two heartbeats. Missed heartbeats depend on the event
    // loop stalling at the wrong moment and cannot be produced on demand, so the real iterator
    // from nats-server is wrapped to throw after its last message.
    const consumer = await js.consumers.get(Topology.eventsStream, Topology.ingestConsumer);
    let pulls = 0;
    let injected = 0;
    const pull = async (opts: FetchOptions) => {
      const real = await consumer.fetch(opts);
      if (++pulls > 1) return real;
      return (async function* () {
        let n = 0;
        for await (const m of real) {
          yield m;
          if (++n === opts.max_messages) break;
        }
        injected = n;
        throw new Error('injected failure: 2 heartbeats missed');
      })() as unknown as Awaited<ReturnType<typeof consumer.fetch>>;
    };
    const metrics = createIngestMetrics();
    const worker: Worker = startWorker({
      config,
      js,
      consumer,
      ch,
      metrics,
      log: createLogger('worker-test', 'silent'),
      pull,
    });
    cleanup.push(() => worker.stop());

    const count = async () =>
      Number(
        (
          await (
            await ch.query({
              query: "SELECT count() AS c FROM requests WHERE session_id = 'pullfail1'",
              format: 'JSONEachRow',
            })
          ).json<{ c: string }>()
        )[0]!.c,
      );
    // Every event stored well inside the 30 s ack wait: nothing waited for redelivery.
    const stored = await eventually(count, (c) => c >= envelopes * perEnvelope, 10_000, 200);
    expect(injected).toBe(2);
    expect(stored).toBe(envelopes * perEnvelope);
    const info = await eventually(
      () => consumer.info(),
      (i) => i.num_ack_pending === 0,
      5000,
      100,
    );
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
  }, 60_000);
});
