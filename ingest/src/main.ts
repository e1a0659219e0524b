import type { AddressInfo } from 'node:net';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  ConfigError,
  createLogger,
  migrateJetStream,
  setSchedPolicy,
  Topology,
  WingmanError,
} from '@wingman/shared';
import { serveSql } from './analytics/sql-service.ts';
import { type IngestConfig, loadIngestConfig } from './config.ts';
import { startWorker } from './consume/worker.ts';
import { startHttp } from './observability/http-server.ts';
import { createIngestMetrics } from './observability/metrics.ts';
import { runMigrations } from './sink/migrate.ts';
import { chdbPath, createWarehouse } from './sink/warehouse.ts';

async function main(): Promise<void> {
  let config: Readonly<IngestConfig>;
  try {
    config = loadIngestConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ingest: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
  const log = createLogger('ingest', config.LOG_LEVEL);
  if (config.INGEST_SCHED === 'idle') {
    // Ingest is batch work with a lag budget of seconds and JetStream holding its backlog; on a
    // host it shares with the relay (`npm start`, docker-compose), the relay's request path should
    // not wait behind it. Nice 10 and 19 measured no gain there, SCHED_IDLE did
    // (docs/performance.md). chDB's pools and libuv's workers, started later, inherit it.
    const r = setSchedPolicy('idle', 'process');
    if ('error' in r) log.warn({ err: r.error }, 'INGEST_SCHED=idle not applied; running at normal priority');
    else log.info({ threads: r.threads.length }, 'cpu scheduling: idle (SCHED_IDLE)');
  }
  const metrics = createIngestMetrics();

  const nc = await connect({
    servers: config.NATS_URL,
    name: 'wingman-ingest',
    maxReconnectAttempts: -1,
    waitOnFirstConnect: true,
  });
  const jsm = await jetstreamManager(nc);
  try {
    await migrateJetStream(nc, jsm, config);
  } catch (err) {
    // A setup problem the operator must fix (JetStreamStorageError: not enough disk for the
    // streams): say it once, plainly, and stop.
    if (!(err instanceof WingmanError)) throw err;
    log.fatal({ code: err.code }, err.message);
    process.exitCode = 1;
    await nc.close();
    return;
  }
  const js = jetstream(nc);

  const ch = await createWarehouse(config);
  const ran = await runMigrations(ch, { rawTtlDays: config.RAW_TTL_DAYS });
  log.info(
    { ran, warehouse: config.CLICKHOUSE_URL ? 'server' : `chdb:${chdbPath(config)}` },
    'clickhouse migrations applied',
  );

  const sql = serveSql(nc, ch, log);
  const consumer = await js.consumers.get(Topology.eventsStream, Topology.ingestConsumer);
  const worker = startWorker({ config, nc, consumer, ch, metrics, log });
  let stopping = false;
  const lagTimer = setInterval(() => {
    consumer.info().then(
      (info) => {
        metrics.lag.set(info.num_pending);
        metrics.ackPending.set(info.num_ack_pending);
      },
      () => {},
    );
  }, 2000);
  const http = await startHttp(config.HTTP_HOST, config.HTTP_PORT, metrics.registry, () => ({
    nats: !nc.isClosed(),
    consuming: !stopping,
  }));
  log.info({ httpPort: (http.address() as AddressInfo).port }, 'ingest ready');

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing the current batch');
    clearInterval(lagTimer);
    await worker.stop();
    sql.unsubscribe();
    http.close();
    // NATS may be stopping at the same moment: one Ctrl-C (or `timeout`) signals every process of
    // `npm start` at once. Then the drain fails ("connection disconnected"); the batch in hand was
    // acked or will be delivered again. Close instead: with reconnects forever, a connection left
    // open would keep this process alive after its shutdown.
    try {
      await nc.drain();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'NATS drain did not finish (server gone?); closing');
      await nc.close();
    }
    await ch.close();
    log.info('ingest stopped');
  };
  const onSignal = (signal: NodeJS.Signals) =>
    stop(signal).catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'shutdown failed');
      process.exit(1);
    });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

await main();
