import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../test/helpers/pipeline.ts';
import {
  type AppProc,
  type ClientProc,
  type RelayProc,
  startClient,
  startLocalApp,
  startRelay,
} from '../../test/helpers/processes.ts';

let relay: RelayProc;
let app: AppProc;
beforeAll(async () => {
  [relay, app] = await Promise.all([startRelay(), startLocalApp()]);
});
afterAll(async () => {
  await Promise.all([relay?.stop(), app?.stop()]);
});

/** `count` GET requests to `url`, `concurrency` at a time over keep-alive connections; their statuses. */
async function load(url: string, count: number, concurrency: number): Promise<Map<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const status = await new Promise<number>((resolve, reject) => {
        http
          .get(url, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return statuses;
}

describe('wingman http: its output', () => {
  it('is bounded while nobody reads it: request lines are dropped, counted, and reported once read again', async () => {
    let client: ClientProc | undefined;
    try {
      client = await startClient(relay, app.port);
      // Stop reading the client's stdout, as a pager left open would: the pipe fills, then the
      // client's own queue would grow with every request line.
      client.child.stdout!.pause();
      const before = client.lines.length;
      const requests = 20_000; // ~1.6 MB of --json request lines: well over the 1 MiB bound
      const statuses = await load(`${client.session.urls.path.replace(/\/$/, '')}/64`, requests, 32);
      expect(statuses.get(200)).toBe(requests);
      // Read again: the queued lines arrive, then the count of the ones not shown.
      client.child.stdout!.resume();
      const notShown = await eventually(
        async () => client!.lines.slice(before).filter((l) => l.includes('"requests_not_shown"')),
        (found) => found.length > 0,
        15_000,
        50,
      );
      const dropped = notShown.reduce((a, l) => a + (JSON.parse(l) as { count: number }).count, 0);
      const shown = await eventually(
        async () => client!.lines.slice(before).filter((l) => l.includes('"event":"request"')).length,
        (n) => n + dropped >= requests,
        15_000,
        50,
      );
      // Every request is either shown or counted, never both, never neither.
      expect(dropped).toBeGreaterThan(0);
      expect(shown + dropped).toBe(requests);
      // Read again, it shows every request once more.
      await load(`${client.session.urls.path.replace(/\/$/, '')}/64`, 10, 2);
      await eventually(
        async () => client!.lines.slice(before).filter((l) => l.includes('"event":"request"')).length,
        (n) => n === shown + 10,
        15_000,
        50,
      );
    } finally {
      await client?.stop();
    }
  });
});
