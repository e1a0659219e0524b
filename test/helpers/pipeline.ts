import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Topology } from '@wingman/shared';
import { Proc, spawnTs } from './processes.ts';

/** A free TCP port on loopback (for servers that cannot report the one they chose). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NatsProc extends Proc {
  port: number;
  url: string;
  storeDir: string;
}

/** A real nats-server with JetStream on loopback; pass port and storeDir to restart the same server. */
export async function startNats(opts: { port?: number; storeDir?: string } = {}): Promise<NatsProc> {
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'wingman-nats-'));
  const p = new Proc(
    spawn('nats-server', ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  ) as NatsProc;
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
): Promise<IngestProc> {
  const chdbPath = env.CHDB_PATH ?? mkdtempSync(join(tmpdir(), 'wingman-chdb-'));
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
