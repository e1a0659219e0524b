/**
 * `npm start`: the main job on one machine, as plain processes:
 *   nats-server (JetStream, data in .wingman/nats) unless NATS_URL points elsewhere,
 *   the relay, and the ingest worker (embedded chDB in .wingman/chdb unless CLICKHOUSE_URL is set),
 *   which shares the CPU with the relay and so runs with INGEST_SCHED=idle unless told otherwise.
 * Ctrl-C (SIGINT) or SIGTERM shuts everything down gracefully, NATS last.
 * Configuration comes from the environment (docs/configuration.md).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = process.env.DATA_DIR ?? join(root, '.wingman');
const natsPort = Number(process.env.NATS_PORT ?? 4222);
const ownNats = !process.env.NATS_URL;
const env = {
  ...process.env,
  NATS_URL: process.env.NATS_URL ?? `nats://127.0.0.1:${natsPort}`,
  DATA_DIR: dataDir,
};

function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listening on 127.0.0.1:${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

const children: { name: string; child: ChildProcess }[] = [];
let stopping = false;

function run(name: string, cmd: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
  const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: { ...env, ...extraEnv } });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    process.stderr.write(`start: ${name} exited (${code ?? signal}); stopping the rest\n`);
    process.exitCode = code || 1;
    void stop();
  });
  children.push({ name, child });
  return child;
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const exited = (c: ChildProcess) =>
    new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));
  // Services first (they drain and flush events), NATS last.
  const services = children.filter((c) => c.name !== 'nats-server');
  for (const { child } of services) child.kill('SIGTERM');
  await Promise.all(services.map(({ child }) => exited(child)));
  for (const { child } of children.filter((c) => c.name === 'nats-server')) {
    child.kill('SIGTERM');
    await exited(child);
  }
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

if (ownNats) {
  const store = join(dataDir, 'nats');
  mkdirSync(store, { recursive: true });
  run('nats-server', 'nats-server', [
    '-js',
    '-sd',
    store,
    '-a',
    '127.0.0.1',
    '-p',
    String(natsPort),
    '-l',
    join(store, 'nats-server.log'),
  ]);
  await waitForPort(natsPort, 10_000);
}
// The relay's NATS thread (Brotli and publishing; EVENT_THREAD_SCHED=idle, the relay's default)
// and ingest are work that can wait: on one host they take only the CPU time the tunnel leaves
// (docs/configuration.md, EVENT_THREAD_SCHED and INGEST_SCHED).
run('relay', process.execPath, ['--import', 'tsx', 'relay/src/main.ts']);
run('ingest', process.execPath, ['--import', 'tsx', 'ingest/src/main.ts'], {
  INGEST_SCHED: process.env.INGEST_SCHED ?? 'idle',
});
process.stderr.write(
  `start: relay on http://127.0.0.1:${process.env.PORT ?? 8080}, NATS on ${env.NATS_URL}, ingest metrics on http://127.0.0.1:${process.env.HTTP_PORT ?? 9464}/metrics\n` +
    'start: share a local port with `npx wingman http 3000`; query events with `npm run sql -- "SELECT count() FROM requests"`\n',
);
