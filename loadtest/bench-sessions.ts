/**
 * npm run bench:sessions -- --sessions 10000 [--smoke]
 *
 * Opens N concurrent tunnel sessions from a separate process, checks that each
 * is routable (a request to /session/{id}/ comes back with that id), and
 * reports relay memory. Last line: one JSON object.
 */
import http from 'node:http';
import { spawnTs, TEST_TOKEN } from '../test/helpers/processes.ts';
import { benchArgs, round, startRelay } from './harness.ts';

const args = benchArgs({ sessions: { type: 'string' }, concurrency: { type: 'string' } });
const sessions = Number(args.sessions ?? (args.smoke ? 200 : 10_000));
const concurrency = Number(args.concurrency ?? 200);

const relay = await startRelay({ MAX_SESSIONS: String(sessions + 100) });
relay.discardOutput();
await new Promise((r) => setTimeout(r, 500));
const rssBefore = relay.rssBytes();
const worker = spawnTs([
  'loadtest/sessions-worker.ts',
  `ws://127.0.0.1:${relay.port}/v1/connect`,
  TEST_TOKEN,
  String(sessions),
  String(concurrency),
]);
try {
  const line = await worker.waitFor((l) => l.startsWith('{"connected"'), 10 * 60_000);
  const result = JSON.parse(line) as {
    connected: number;
    failed: number;
    connectMs: number[];
    ids: string[];
  };
  await new Promise((r) => setTimeout(r, 500));
  const rssAfter = relay.rssBytes();

  // Route one request to every session, 64 at a time over keep-alive connections.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let routable = 0;
  let cursor = 0;
  const check = (id: string) =>
    new Promise<boolean>((resolve) => {
      http
        .get(`${relay.url}/session/${id}/`, { agent }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => resolve(res.statusCode === 200 && body === id));
        })
        .on('error', () => resolve(false));
    });
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (cursor < result.ids.length) {
        const id = result.ids[cursor++]!;
        if (await check(id)) routable++;
      }
    }),
  );
  agent.destroy();
  const sorted = [...result.connectMs].sort((a, b) => a - b);
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
  process.stderr.write(
    `sessions ${sessions}: connected ${result.connected}, routable ${routable}, relay RSS ${round(rssBefore / 2 ** 20, 1)} -> ${round(rssAfter / 2 ** 20, 1)} MiB\n`,
  );
  console.log(
    JSON.stringify({
      sessions,
      connected: result.connected,
      routable,
      relay_rss_mb: round(rssAfter / 2 ** 20, 1),
      relay_rss_before_mb: round(rssBefore / 2 ** 20, 1),
      rss_per_session_kb: round((rssAfter - rssBefore) / 1024 / Math.max(1, result.connected), 2),
      connect_p99_ms: round(p99),
    }),
  );
} finally {
  await worker.stop();
  await relay.stop();
}
