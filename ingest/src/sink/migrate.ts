import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';

export const MIGRATIONS_DIR = join(import.meta.dirname, '../../../clickhouse/migrations');
const NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

/** Split a SQL file into statements: `;` at the end of a line ends one. Comments are dropped. */
export function splitStatements(sql: string): string[] {
  const noComments = sql
    .split('\n')
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n');
  return noComments
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Read NNNN_name.sql files in order; throws on a malformed name or a repeated number. */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const seen = new Map<number, string>();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((name) => {
      const m = NAME.exec(name);
      if (!m) throw new Error(`migration file name ${name} does not match NNNN_name.sql`);
      const version = Number(m[1]);
      const clash = seen.get(version);
      if (clash) throw new Error(`migrations ${clash} and ${name} share number ${m[1]}`);
      seen.set(version, name);
      return { version, name, statements: splitStatements(readFileSync(join(dir, name), 'utf8')) };
    });
}

const RAW_TABLES = ['sessions', 'connections', 'requests', 'websockets', 'security'];

/**
 * Apply forward-only migrations not yet recorded in `schema_migrations`, then
 * set the raw-table TTL. Running it again is a no-op. Works on chDB and a server.
 */
export async function runMigrations(
  client: ClickHouseClient,
  opts: { rawTtlDays: number; dir?: string },
): Promise<string[]> {
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
            ENGINE = MergeTree ORDER BY version`,
  });
  const done = await client.query({ query: 'SELECT version FROM schema_migrations', format: 'JSONEachRow' });
  const applied = new Set((await done.json<{ version: number }>()).map((r) => Number(r.version)));
  const ran: string[] = [];
  for (const m of readMigrations(opts.dir)) {
    if (applied.has(m.version)) continue;
    for (const statement of m.statements) await client.command({ query: statement });
    await client.insert({
      table: 'schema_migrations',
      values: [{ version: m.version, name: m.name }],
      format: 'JSONEachRow',
    });
    ran.push(m.name);
  }
  // The SQL files say 30 days; apply RAW_TTL_DAYS when it differs, without rewriting existing parts.
  const tables = await client.query({
    query:
      'SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name IN ({names:Array(String)})',
    query_params: { names: RAW_TABLES },
    format: 'JSONEachRow',
  });
  for (const t of await tables.json<{ name: string; engine_full: string }>()) {
    if (t.engine_full.includes(`toIntervalDay(${opts.rawTtlDays})`)) continue;
    await client.command({
      query: `ALTER TABLE ${t.name} MODIFY TTL toDateTime(ts) + INTERVAL ${opts.rawTtlDays} DAY`,
      clickhouse_settings: { materialize_ttl_after_modify: 0 },
    });
  }
  return ran;
}
