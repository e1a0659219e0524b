/**
 * npm run sql -- "<SELECT …>" | <file.sql> | --query insights/total_sessions [--param from=… --param to=…]
 *
 * Runs read-only SQL against the configured warehouse and prints a table.
 * With CLICKHOUSE_URL set it queries the server directly; otherwise it asks
 * the ingest worker (which owns the embedded chDB directory) over NATS.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import {
  checkReadOnly,
  createWarehouse,
  loadIngestConfig,
  runSql,
  type SqlReply,
  type SqlRequest,
} from '@wingman/ingest';
import { Topology } from '@wingman/shared';

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    query: { type: 'string' },
    param: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
  },
});

const params: Record<string, string> = {};
for (const p of values.param ?? []) {
  const eq = p.indexOf('=');
  if (eq < 1) throw new Error(`--param ${p}: expected name=value`);
  params[p.slice(0, eq)] = p.slice(eq + 1);
}
let request: SqlRequest;
if (values.query) request = { query: values.query, params };
else {
  const arg = positionals.join(' ').trim();
  if (!arg) {
    process.stderr.write(
      'usage: npm run sql -- "<SELECT …>" | file.sql | --query insights/<name> --param from=… --param to=…\n',
    );
    process.exit(2);
  }
  const sql = arg.endsWith('.sql') && existsSync(arg) ? readFileSync(arg, 'utf8') : arg;
  const refusal = checkReadOnly(sql.replace(/^\s*--.*$/gm, ''));
  if (refusal) {
    process.stderr.write(`sql: ${refusal}\n`);
    process.exit(2);
  }
  request = { sql, params };
}

const config = loadIngestConfig();
let reply: SqlReply;
if (config.CLICKHOUSE_URL) {
  const ch = await createWarehouse(config);
  reply = await runSql(ch, request);
  await ch.close();
} else {
  const nc = await connect({ servers: config.NATS_URL, name: 'wingman-sql' }).catch((err: Error) => {
    process.stderr.write(
      `sql: cannot reach NATS at ${config.NATS_URL} (${err.message}). Is \`npm start\` running?\n`,
    );
    process.exit(1);
  });
  try {
    const msg = await nc.request(Topology.sqlSubject, JSON.stringify(request), { timeout: 30_000 });
    reply = JSON.parse(msg.string()) as SqlReply;
  } catch (err) {
    process.stderr.write(
      `sql: no answer from ingest (${(err as Error).message}). Is the ingest worker running?\n`,
    );
    process.exit(1);
  } finally {
    await nc.close();
  }
}

if (!reply.ok) {
  process.stderr.write(`sql: ${reply.error}\n`);
  process.exit(1);
}
if (values.json) console.log(JSON.stringify(reply.rows));
else console.log(formatTable(reply.rows));

function formatTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = Object.keys(rows[0]!);
  const cell = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  const widths = cols.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  const line = (vals: string[]) => vals.map((v, i) => v.slice(0, 60).padEnd(widths[i]!)).join('  ');
  const table = [
    line(cols),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map((r) => line(cols.map((c) => cell(r[c])))),
  ];
  return `${table.join('\n')}\n(${rows.length} row${rows.length === 1 ? '' : 's'})`;
}
