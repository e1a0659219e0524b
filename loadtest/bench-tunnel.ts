/**
 * npm run bench:tunnel [-- --smoke] [-- --seconds N] [-- --events]
 *
 * Serves the local app directly and then through relay + `wingman` client on
 * this machine, in one run, with wrk as the load generator:
 *   - 64-byte responses at 32 connections (requests/s, p50, p99);
 *   - 1 MiB responses at 4 connections (MiB/s).
 * With --events, the tunnel runs first with the event pipeline off and then on
 * (nats-server and the ingest worker running, every request an event), and
 * the line gains "ratio_events_on_off" (64-byte requests/s, on / off).
 * The last line printed is one JSON object with the figures.
 */

import { type IngestProc, type NatsProc, startIngest, startNats } from '../test/helpers/pipeline.ts';
import {
  benchArgs,
  ensureWrk,
  round,
  startClient,
  startLocalApp,
  startRelay,
  type WrkResult,
  wrk,
} from './harness.ts';

const args = benchArgs({ seconds: { type: 'string' }, events: { type: 'boolean', default: false } });
const seconds = Number(args.seconds ?? (args.smoke ? 2 : 10));
const MIB = 1024 * 1024;

ensureWrk();
const app = await startLocalApp();
const direct = `http://127.0.0.1:${app.port}`;

/** One relay + client, measured at 64 B / 32 connections and 1 MiB / 4 connections. */
async function throughTunnel(
  relayEnv: Record<string, string>,
): Promise<{ small: WrkResult; large: WrkResult }> {
  const relay = await startRelay(relayEnv);
  relay.discardOutput();
  const client = await startClient(relay, app.port);
  // The client still prints its per-request line, as users see it; we just do not parse it here.
  client.discardOutput();
  try {
    const tunnel = client.session.urls.path.replace(/\/$/, '');
    wrk(`${tunnel}/64`, 32, 1); // warm-up
    return { small: wrk(`${tunnel}/64`, 32, seconds), large: wrk(`${tunnel}/bytes/${MIB}`, 4, seconds) };
  } finally {
    await Promise.all([client.stop(), relay.stop()]);
  }
}

let nats: NatsProc | undefined;
let ingest: IngestProc | undefined;
try {
  wrk(`${direct}/64`, 32, 1); // warm-up
  const directSmall = wrk(`${direct}/64`, 32, seconds);
  const directLarge = wrk(`${direct}/bytes/${MIB}`, 4, seconds);
  const off = await throughTunnel({});
  let on: Awaited<ReturnType<typeof throughTunnel>> | undefined;
  if (args.events) {
    nats = await startNats();
    ingest = await startIngest(nats.url);
    ingest.discardOutput();
    on = await throughTunnel({ NATS_URL: nats.url });
  }
  const { small, large } = off;
  process.stderr.write(
    `64 B @32c: direct ${round(directSmall.rps, 0)} rps, tunnel ${round(small.rps, 0)} rps (p50 ${small.p50Ms} ms, p99 ${small.p99Ms} ms)` +
      (on ? `, with events ${round(on.small.rps, 0)} rps (p99 ${on.small.p99Ms} ms)` : '') +
      `\n1 MiB @4c: direct ${round(directLarge.mibPerS, 1)} MiB/s, tunnel ${round(large.mibPerS, 1)} MiB/s\n`,
  );
  const errors = [directSmall, directLarge, small, large, ...(on ? [on.small, on.large] : [])].reduce(
    (a, r) => a + r.errors,
    0,
  );
  console.log(
    JSON.stringify({
      direct_rps: round(directSmall.rps, 0),
      tunnel_rps: round(small.rps, 0),
      ratio: round(small.rps / directSmall.rps, 3),
      tunnel_p50_ms: round(small.p50Ms),
      tunnel_p99_ms: round(small.p99Ms),
      direct_p99_ms: round(directSmall.p99Ms),
      mib_per_s_direct: round(directLarge.mibPerS, 1),
      mib_per_s_tunnel: round(large.mibPerS, 1),
      mib_ratio: round(large.mibPerS / directLarge.mibPerS, 3),
      errors,
      ...(on
        ? {
            tunnel_rps_events_on: round(on.small.rps, 0),
            tunnel_p99_ms_events_on: round(on.small.p99Ms),
            ratio_events_on_off: round(on.small.rps / small.rps, 3),
          }
        : {}),
      seconds,
    }),
  );
} finally {
  await ingest?.stop();
  await nats?.stop();
  await app.stop();
}
