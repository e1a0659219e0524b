import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Topology } from '@wingman/shared';
import { Proc, spawnTs } from './processes.ts';
import { tempDir } from './temp-dir.ts';

/** Lowest port the kernel hands out for outgoing connections (ip_local_port_range). */
function ephemeralLow(): number {
  try {
    return (
      Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768
    );
  } catch {
    return 32768;
  }
}

const listens = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

/**
 * A free TCP port on loopback, for a server that is given its port, or restarted on the same one
 * (nats-server, a relay restart test). Chosen below the ephemeral range: a port from that range
 * can be taken by any outgoing connection on the machine while its server is down, and the
 * restart then fails with "address in use" (seen once in a full test run).
 */
export async function freePort(): Promise<number> {
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralLow());
  for (let i = 0; i < 100; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await listens(port)) return port;
  }
  throw new Error(`no free port found in ${low}-${high - 1}`);
}

export interface NatsProc extends Proc {
  port: number;
  url: string;
  storeDir: string;
}

/** A real nats-server with JetStream on loopback; pass port and storeDir to restart the same server. */
export async function startNats(
  opts: {
    port?: number;
    storeDir?: string;
    /** nats-server config file text, e.g. JetStream limits. */
    config?: string;
    /** A command that execs nats-server in its place (taskset), so the pid is still nats-server's. */
    wrapper?: string[];
  } = {},
): Promise<NatsProc> {
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? tempDir('wingman-nats-');
  const args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)];
  if (opts.config !== undefined) {
    const file = join(tempDir('wingman-nats-conf-'), 'nats.conf');
    writeFileSync(file, opts.config);
    args.push('-c', file);
  }
  const argv = [...(opts.wrapper ?? []), 'nats-server', ...args];
  const p = new Proc(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })) as NatsProc;
  await p.waitFor((l) => l.includes('Server is ready'));
  p.port = port;
  p.url = `nats://127.0.0.1:${port}`;
  p.storeDir = storeDir;
  return p;
}

export interface IngestProc extends Proc {
  httpPort: number;
  chdbPath: string;
}

/** The ingest worker as its own process, with its own chDB directory unless one is given. */
export async function startIngest(
  natsUrl: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  /** A command that execs ingest's node in its place (spawnTs). */
  wrapper: string[] = [],
): Promise<IngestProc> {
  const chdbPath = env.CHDB_PATH ?? tempDir('wingman-chdb-');
  const p = spawnTs(
    ['ingest/src/main.ts'],
    {
      NATS_URL: natsUrl,
      CHDB_PATH: chdbPath,
      HTTP_PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    nodeArgs,
    wrapper,
  ) as IngestProc;
  const line = await p.waitFor((l) => l.includes('"ingest ready"'), 60_000);
  p.httpPort = (JSON.parse(line) as { httpPort: number }).httpPort;
  p.chdbPath = chdbPath;
  return p;
}

/** Read-only SQL through ingest's NATS service (only ingest may open its chDB directory). */
export async function sql<T = Record<string, unknown>>(
  nc: NatsConnection,
  query: string,
  params: Record<string, unknown> = {},
): Promise<T[]> {
  const msg = await nc.request(Topology.sqlSubject, JSON.stringify({ sql: query, params }), {
    timeout: 10_000,
  });
  const reply = JSON.parse(msg.string()) as { ok: boolean; rows?: T[]; error?: string };
  if (!reply.ok) throw new Error(`sql failed: ${reply.error}`);
  return reply.rows!;
}

/** Poll `fn` until its value satisfies `ok` (errors count as not yet), or fail after timeoutMs with the last outcome. */
export async function eventually<T>(
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 30_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = JSON.stringify(v);
    } catch (err) {
      last = `error: ${(err as Error).message}`;
    }
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms; last: ${last}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function natsConnect(url: string): Promise<NatsConnection> {
  return connect({ servers: url, name: 'wingman-test', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

/** Messages not yet acked by ingest (pending delivery + delivered but unacked). */
export async function unacked(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.consumers.info(Topology.eventsStream, Topology.ingestConsumer);
  return info.num_pending + info.num_ack_pending;
}

/** Run SQL against a chDB directory from a separate process (the test process must not open chDB itself). */
export async function chdbExec(path: string, query: string): Promise<string> {
  const p = spawnTs(['test/helpers/chdb-exec.ts', path, query]);
  const { code } = await p.exited;
  if (code !== 0) throw new Error(`chdb-exec failed: ${p.stderr}`);
  return p.lines.join('\n');
}
