import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { type Logger, parseJson, Topology } from '@wingman/shared';
import { z } from 'zod';

export const QUERIES_DIR = join(import.meta.dirname, '../../../clickhouse/queries');

/** A request to ingest's read-only SQL service: raw SQL, or a named query from clickhouse/queries. */
export const sqlRequestSchema = z.union([
  z.object({ sql: z.string().min(1).max(100_000), params: z.record(z.string(), z.unknown()).optional() }),
  z.object({
    query: z.string().regex(/^(insights|abuse)\/[a-z0-9_]+$/),
    params: z.record(z.string(), z.unknown()).optional(),
  }),
]);
export type SqlRequest = z.infer<typeof sqlRequestSchema>;
export type SqlReply = { ok: true; rows: Record<string, unknown>[] } | { ok: false; error: string };

const READ_ONLY = /^\s*(select|with|show|describe|desc|explain|exists)\b/i;

/** Refuse anything but one read-only statement. */
export function checkReadOnly(sql: string): string | undefined {
  if (!READ_ONLY.test(sql)) return 'only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS are allowed';
  if (/;\s*\S/.test(sql)) return 'one statement at a time';
  return undefined;
}

/** The SQL of a named query, or undefined when there is no such file. */
export function loadNamedQuery(name: string): string | undefined {
  try {
    return readFileSync(join(QUERIES_DIR, `${name}.sql`), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Statement kinds allowed, as the first line of ClickHouse's own `EXPLAIN AST`. */
const ALLOWED_AST =
  /^(SelectWithUnionQuery|SelectIntersectExceptQuery|ShowTables|ShowCreate\w*|DescribeQuery|Explain|Exists\w*)\b/;
/** Table functions that reach outside the warehouse (files, URLs, other databases, programs). */
const OUTSIDE =
  /\bFunction (file|url|s3\w*|remote\w*|hdfs\w*|mysql|postgresql|jdbc|odbc|executable\w*|azureBlobStorage\w*|gcs|sqlite|mongodb|redis|input|cluster\w*)\b/;

/**
 * Decide with ClickHouse's own parser whether `sql` only reads the warehouse.
 * (A session-level `readonly` setting cannot be used: chDB applies settings
 * with SET, so it would stick to the ingest worker's session.)
 */
async function refuseUnlessReadOnly(
  ch: ClickHouseClient,
  sql: string,
  params: Record<string, unknown>,
): Promise<string | undefined> {
  if (/\bINTO\s+OUTFILE\b/i.test(sql)) return 'INTO OUTFILE is not allowed';
  const explained = await ch.query({
    query: `EXPLAIN AST ${sql}`,
    query_params: params,
    format: 'TabSeparatedRaw',
  });
  // A server answers raw lines; chDB quotes each line as CSV whatever the format: unquote both alike.
  const ast = (await explained.text())
    .split('\n')
    .map((l) => l.replace(/^"|"$/g, '').trim())
    .join('\n');
  if (!ALLOWED_AST.test(ast)) return `only read queries are allowed, not ${ast.split(' ')[0]}`;
  if (OUTSIDE.test(ast)) return 'table functions that read outside the warehouse are not allowed';
  return undefined;
}

/** Run a read-only request against the warehouse. Never rejects: every failure is an error reply. */
export async function runSql(ch: ClickHouseClient, req: SqlRequest): Promise<SqlReply> {
  try {
    let raw: string | undefined;
    if ('sql' in req) raw = req.sql;
    else {
      raw = loadNamedQuery(req.query);
      if (raw === undefined) return { ok: false, error: `no such query: ${req.query}` };
    }
    const sql = raw
      .replace(/^\s*--.*$/gm, '')
      .trim()
      .replace(/;\s*$/, '');
    const refusal = checkReadOnly(sql);
    if (refusal) return { ok: false, error: refusal };
    const why = await refuseUnlessReadOnly(ch, sql, req.params ?? {});
    if (why) return { ok: false, error: why };
    const result = await ch.query({ query: sql, query_params: req.params ?? {}, format: 'JSONEachRow' });
    return { ok: true, rows: await result.json<Record<string, unknown>>() };
  } catch (err) {
    return { ok: false, error: (err as Error).message.split('\n')[0]!.slice(0, 2000) };
  }
}

/**
 * Serve SQL over NATS request/reply, so tools (npm run sql, the relay) can
 * query the embedded chDB that only this process may open.
 */
export function serveSql(nc: NatsConnection, ch: ClickHouseClient, log: Logger): Subscription {
  return nc.subscribe(Topology.sqlSubject, {
    queue: 'ingest-sql',
    callback: (err, msg) => {
      if (err) return log.warn({ err: err.message }, 'sql service subscription error');
      answerSqlRequest(ch, msg.data).then((reply) => msg.respond(JSON.stringify(reply)));
    },
  });
}

/** One SQL service request, as received (untrusted bytes), to its reply. Never rejects. */
export function answerSqlRequest(ch: ClickHouseClient, data: Uint8Array): Promise<SqlReply> {
  const parsed = parseJson(sqlRequestSchema, data);
  if (!parsed.ok) return Promise.resolve({ ok: false, error: `bad request: ${parsed.error}` });
  return runSql(ch, parsed.value);
}
