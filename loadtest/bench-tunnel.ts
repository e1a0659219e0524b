/**
 * npm run bench:tunnel [-- --smoke] [-- --seconds N]
 *
 * Serves the local app directly and then through relay + `wingman` client on
 * this machine, in one run, with wrk as the load generator:
 *   - 64-byte responses at 32 connections (requests/s, p50, p99);
 *   - 1 MiB responses at 4 connections (MiB/s).
 * The last line printed is one JSON object with the figures.
 */
import { benchArgs, ensureWrk, round, startClient, startLocalApp, startRelay, wrk } from './harness.ts';

const args = benchArgs({ seconds: { type: 'string' } });
const seconds = Number(args.seconds ?? (args.smoke ? 2 : 10));

ensureWrk();
const [app, relay] = await Promise.all([startLocalApp(), startRelay()]);
const client = await startClient(relay, app.port);
// The client still prints its per-request line, as users see it; we just do not parse it here.
client.discardOutput();
try {
  const direct = `http://127.0.0.1:${app.port}`;
  const tunnel = client.session.urls.path.replace(/\/$/, '');
  // Warm up connections and JIT on both paths before measuring.
  wrk(`${direct}/64`, 32, 1);
  wrk(`${tunnel}/64`, 32, 1);

  const small = { direct: wrk(`${direct}/64`, 32, seconds), tunnel: wrk(`${tunnel}/64`, 32, seconds) };
  const mib = 1024 * 1024;
  const large = {
    direct: wrk(`${direct}/bytes/${mib}`, 4, seconds),
    tunnel: wrk(`${tunnel}/bytes/${mib}`, 4, seconds),
  };

  process.stderr.write(
    `64 B @32c: direct ${round(small.direct.rps, 0)} rps, tunnel ${round(small.tunnel.rps, 0)} rps (p50 ${small.tunnel.p50Ms} ms, p99 ${small.tunnel.p99Ms} ms)\n` +
      `1 MiB @4c: direct ${round(large.direct.mibPerS, 1)} MiB/s, tunnel ${round(large.tunnel.mibPerS, 1)} MiB/s\n`,
  );
  console.log(
    JSON.stringify({
      direct_rps: round(small.direct.rps, 0),
      tunnel_rps: round(small.tunnel.rps, 0),
      ratio: round(small.tunnel.rps / small.direct.rps, 3),
      tunnel_p50_ms: round(small.tunnel.p50Ms),
      tunnel_p99_ms: round(small.tunnel.p99Ms),
      direct_p99_ms: round(small.direct.p99Ms),
      mib_per_s_direct: round(large.direct.mibPerS, 1),
      mib_per_s_tunnel: round(large.tunnel.mibPerS, 1),
      mib_ratio: round(large.tunnel.mibPerS / large.direct.mibPerS, 3),
      errors: small.direct.errors + small.tunnel.errors + large.direct.errors + large.tunnel.errors,
      seconds,
    }),
  );
} finally {
  await Promise.all([client.stop(), relay.stop(), app.stop()]);
}
