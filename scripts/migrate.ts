/**
 * npm run migrate: create or update the JetStream streams, consumer and KV
 * buckets, then apply the ClickHouse migrations. Both services also run this
 * at start; it is idempotent. With embedded chDB, run it while ingest is
 * stopped (only one process may open the data directory).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createWarehouse, loadIngestConfig, runMigrations } from '@wingman/ingest';
import { migrateJetStream } from '@wingman/shared';

const config = loadIngestConfig();
const nc = await connect({ servers: config.NATS_URL, name: 'wingman-migrate' });
await migrateJetStream(nc, await jetstreamManager(nc), config);
await nc.close();
console.log('jetstream: streams, consumer and KV buckets are in place');
const ch = await createWarehouse(config);
const ran = await runMigrations(ch, { rawTtlDays: config.RAW_TTL_DAYS });
await ch.close();
console.log(ran.length ? `clickhouse: applied ${ran.join(', ')}` : 'clickhouse: up to date');
