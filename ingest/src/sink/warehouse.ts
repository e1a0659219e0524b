import { join } from 'node:path';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import type { IngestConfig } from '../config.ts';

/** Settings for every insert: synchronous inserts (newer servers default to async). */
export const INSERT_SETTINGS = { async_insert: 0, wait_for_async_insert: 0 } as const;

/**
 * One @clickhouse/client for both warehouses: embedded chDB by default, a
 * ClickHouse server over HTTP when CLICKHOUSE_URL is set. chDB allows one data
 * directory per process, so only ingest opens it.
 */
export async function createWarehouse(c: Readonly<IngestConfig>): Promise<ClickHouseClient> {
  if (c.CLICKHOUSE_URL) {
    return createClient({
      url: c.CLICKHOUSE_URL,
      username: c.CLICKHOUSE_USER,
      password: c.CLICKHOUSE_PASSWORD,
      database: c.CLICKHOUSE_DATABASE,
      clickhouse_settings: INSERT_SETTINGS,
      request_timeout: 30_000,
    });
  }
  const { createChdbConnection } = await import('chdb/connection');
  return createClient({ connection: createChdbConnection({ path: chdbPath(c) }) } as Parameters<
    typeof createClient
  >[0]);
}

export const chdbPath = (c: Readonly<IngestConfig>): string => c.CHDB_PATH ?? join(c.DATA_DIR, 'chdb');
