import { envInt, loadConfig, natsConfigShape } from '@wingman/shared';
import { z } from 'zod';

/** Ingest configuration, read from the environment once (docs/configuration.md). */
export const ingestConfigSchema = z.object({
  ...natsConfigShape,
  /** ClickHouse server over HTTP; unset means embedded chDB in CHDB_PATH. */
  CLICKHOUSE_URL: z.url().optional(),
  CLICKHOUSE_USER: z.string().default('default'),
  CLICKHOUSE_PASSWORD: z.string().default(''),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .default('default'),
  DATA_DIR: z.string().default('.wingman'),
  /** Embedded chDB data directory; defaults to DATA_DIR/chdb. */
  CHDB_PATH: z.string().optional(),
  RAW_TTL_DAYS: envInt(30, 1, 3650),
  /**
   * Messages (envelopes) per pull. A relay envelope holds up to EVENT_BATCH_MAX (1000) events and
   * EVENT_ENVELOPE_MAX_BYTES (512 KiB), so a pull is at most ~50k events and ~25 MiB.
   */
  FETCH_BATCH: envInt(50, 1, 10_000),
  /**
   * Envelope bytes (as inflated) planned into one insert. A pull's messages past this wait for the
   * next insert, so ingest's memory stays bounded even when every message inflates to 32 MiB
   * (MAX_INFLATED_ENVELOPE_BYTES). Relay envelopes (at most 512 KiB) never reach it at the default.
   */
  BATCH_MAX_BYTES: envInt(64 * 1024 * 1024, 1024),
  /** A pull returns when FETCH_BATCH messages arrived or after this long (JetStream minimum: 1000). */
  FETCH_EXPIRES_MS: envInt(1000, 1000, 60_000),
  /** Backoff bounds when ClickHouse inserts fail. */
  RETRY_MIN_MS: envInt(500, 10),
  RETRY_MAX_MS: envInt(30_000, 100),
  HTTP_HOST: z.string().default('127.0.0.1'),
  HTTP_PORT: envInt(9464, 0, 65535),
  /**
   * CPU scheduling of every ingest thread (chDB's included). `idle` (Linux SCHED_IDLE) runs
   * ingest only on CPU time nothing else wants, so a relay on the same host does not wait behind
   * it; `npm start` and docker-compose set it. `normal` (the default) suits a host of its own.
   */
  INGEST_SCHED: z.enum(['normal', 'idle']).default('normal'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type IngestConfig = z.output<typeof ingestConfigSchema>;

export function loadIngestConfig(
  env: Record<string, string | undefined> = process.env,
): Readonly<IngestConfig> {
  return loadConfig(ingestConfigSchema, env);
}
