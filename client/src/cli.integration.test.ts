import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestsOk } from '../../test/helpers/http.ts';
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
      const url = `${client.session.urls.path.replace(/\/$/, '')}/64`;
      expect(await requestsOk(requests, 32, () => url)).toBe(requests);
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
      expect(await requestsOk(10, 2, () => url)).toBe(10);
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
