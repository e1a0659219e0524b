/**
 * npm run bench:tunnel [-- --smoke] [-- --seconds N] [-- --events [--ingest-after] [--ingest-sched normal] [--pipeline-cpu N]]
 *
 * Serves the local app directly and then through relay + `wingman` client on
 * this machine, in one run, with wrk as the load generator:
 *   - 64-byte responses at 32 connections (requests/s, p50, p99);
 *   - 1 MiB responses at 4 connections (MiB/s).
 * With --events, nats-server and the ingest worker start, and sixteen pairs (--pairs) of
 * tunnels run one pair after the other, each pair side by side: one relay with
 * events off, one with events on (every request an event). In each pair 64-byte
 * runs of 4 s alternate between them in ABBA order (off, on, on, off), so drift
 * on a shared machine hits both alike, and the line gains "ratio_events_on_off"
 * (mean requests/s on / off over all runs) and "ratio_events_on_off_ci95", a 95% interval
 * from the pairs' own ratios: how far one run can be trusted. Every request through the events-on
 * tunnels is then looked up in ClickHouse: "events_missing" must be 0.
 * With --events --ingest-after, ingest starts only after the rounds (events wait
 * in JetStream): the ratio then shows what the relay and nats-server cost alone.
 * Ingest runs as `npm start` runs it next to the relay, with INGEST_SCHED=idle (Linux SCHED_IDLE:
 * it gets only CPU time the tunnel leaves); --ingest-sched normal runs it at the default policy,
 * as on a host of its own, to show what sharing the CPU evenly costs the tunnel. The events-on
 * relay's NATS thread runs at the relay's default, EVENT_THREAD_SCHED=idle, unless the
 * environment sets EVENT_THREAD_SCHED.
 * With --events --pipeline-cpu N, nats-server and ingest run on CPU N alone and everything else
 * (this process, the local app, the relays, the clients, wrk) on the other CPUs: the pipeline on a
 * core of its own, as when it runs apart from the relay. Every run in the line, direct ones too,
 * then has one core fewer; the line gains "pipeline_cpu" and "tunnel_cpus". The relay's NATS
 * thread then runs as batch by default (see eventThreadSched).
 * The last line printed is one JSON object with the figures.
 */

import type { NatsConnection } from '@nats-io/transport-node';
import { natsConfigShape } from '@wingman/shared';
import { relayConfigSchema } from '../relay/src/config.ts';
import {
  eventually,
  type IngestProc,
  type NatsProc,
  natsConnect,
  sql,
  startIngest,
  startNats,
} from '../test/helpers/pipeline.ts';
import {
  allowedCpus,
  benchArgs,
  CpuMeter,
  ensureWrk,
  expectPinned,
  ingestSchedArg,
  meanCi95,
  metricValue,
  pinProcess,
  round,
  splitCpus,
  startClient,
  startLocalApp,
  startRelay,
  type WrkResult,
  wrk,
} from './harness.ts';

const args = benchArgs({
  seconds: { type: 'string' },
  events: { type: 'boolean', default: false },
  // Diagnostic: start ingest only after the measured rounds, so they show the relay + NATS share alone.
  'ingest-after': { type: 'boolean', default: false },
  'ingest-sched': { type: 'string', default: 'idle' },
  /**
   * Fresh off/on tunnel pairs with --events (default 16; 1 with --smoke). Single pairs scatter by
   * ±0.1 on this machine; with 8 a run's 95% interval was about ±0.07, too wide to tell 0.9 from
   * 0.95 (docs/performance.md, thirteenth session).
   */
  pairs: { type: 'string' },
  'pipeline-cpu': { type: 'string' },
});
const ingestSched = ingestSchedArg(args['ingest-sched']);
const seconds = Number(args.seconds ?? (args.smoke ? 2 : 10));
const pairs = Number(args.pairs ?? (args.smoke ? 1 : 16));
if (!Number.isInteger(pairs) || pairs < 1)
  throw new Error(`--pairs must be a whole number ≥ 1, not ${args.pairs}`);
const MIB = 1024 * 1024;

/** With --pipeline-cpu: the CPU for nats-server and ingest, and the others for the tunnel. */
const cpus = args['pipeline-cpu'] === undefined ? undefined : splitCpus(args['pipeline-cpu'], allowedCpus());
if (cpus && !args.events) throw new Error('--pipeline-cpu applies only with --events');
/**
 * The events-on relay's NATS thread at the relay's default (idle), unless the environment sets it.
 * With --pipeline-cpu the tunnel keeps its CPUs busy, so a thread under SCHED_IDLE there gets no
 * CPU during a round and publishes after it, out of the measurement (in one smoke run none of the
 * ~25k events were stored by the end): batch, unless the environment says otherwise.
 */
const eventThreadSched = (() => {
  const env = process.env.EVENT_THREAD_SCHED || undefined; // set but empty counts as unset
  const r = relayConfigSchema.shape.EVENT_THREAD_SCHED.safeParse(env ?? (cpus ? 'batch' : undefined));
  if (!r.success) throw new Error(`EVENT_THREAD_SCHED ${JSON.stringify(env)}: ${r.error.issues[0]?.message}`);
  return r.data;
})();
/** Starts nats-server and ingest on the pipeline's CPU (taskset execs them in its place). */
const pipelineWrapper = cpus ? ['taskset', '-c', String(cpus.pipeline)] : [];
if (cpus) pinProcess(process.pid, cpus.tunnel); // what this process starts from now on inherits it

ensureWrk();
const app = await startLocalApp();
if (cpus) expectPinned('local app', app.pid, cpus.tunnel);
const direct = `http://127.0.0.1:${app.port}`;

/** A relay with its `wingman` client in front of the local app. */
async function openTunnel(relayEnv: Record<string, string>) {
  const relay = await startRelay(relayEnv);
  relay.discardOutput();
  const client = await startClient(relay, app.port);
  if (cpus)
    for (const [name, pid] of [
      ['relay', relay.pid],
      ['client', client.pid],
    ] as const)
      expectPinned(name, pid, cpus.tunnel);
  // The client still prints its per-request lines, as users see them; this process reads and
  // drops them (wrk runs asynchronously so that it can), as a terminal would read them.
  client.discardOutput();
  return {
    url: client.session.urls.path.replace(/\/$/, ''),
    sessionId: client.session.sessionId,
    pids: { relay: relay.pid, client: client.pid },
    /** A counter from the relay's /metrics (0 when absent). */
    metric: async (name: string) =>
      metricValue(await (await fetch(`${relay.url}/metrics`)).text(), name) || 0,
    stop: () => Promise.all([client.stop(), relay.stop()]),
  };
}

/** One relay + client, measured at 64 B / 32 connections and 1 MiB / 4 connections. */
async function throughTunnel(): Promise<{ small: WrkResult; large: WrkResult }> {
  const t = await openTunnel({});
  try {
    await wrk(`${t.url}/64`, 32, 1); // warm-up
    return {
      small: await wrk(`${t.url}/64`, 32, seconds),
      large: await wrk(`${t.url}/bytes/${MIB}`, 4, seconds),
    };
  } finally {
    await t.stop();
  }
}

/**
 * Events off vs on, interleaved, over `pairs` fresh pairs of tunnels (one relay with events off,
 * one with events on): each pair runs 64-byte runs of `segment` seconds in ABBA order (off, on,
 * on, off). Several fresh pairs, so that one process's start-to-start spread in CPU per request
 * (up to ~30% in one measurement, docs/performance.md) does not decide the ratio alone. Then wait
 * for ingest to store every request of the events-on tunnels, and count what is missing.
 */
async function eventsOnOff(
  natsUrl: string,
  nc: NatsConnection,
  pairs: number,
  segment: number,
  /** Pipeline processes to meter (nats-server, ingest when it runs during the rounds). */
  pipelinePids: Record<string, number>,
  /** Runs after the rounds, before the ClickHouse check (starts ingest with --ingest-after). */
  afterRounds: () => Promise<void>,
) {
  const offRuns: WrkResult[] = [];
  const onRuns: WrkResult[] = [];
  // CPU each process used per 1000 requests, summed over the rounds (where the cost goes).
  const cpuOff = new CpuMeter();
  const cpuOn = new CpuMeter();
  /** Times an events-on relay's NATS thread fell behind and was raised from SCHED_IDLE. */
  let boosts = 0;
  /** Each events-on session and when its measured runs began (after its warm-up). */
  const measured: { sessionId: string; from: number }[] = [];
  for (let p = 0; p < pairs; p++) {
    const off = await openTunnel({});
    const on = await openTunnel({ NATS_URL: natsUrl, EVENT_THREAD_SCHED: eventThreadSched });
    try {
      // Warm up both, 3 s each: after 1 s the first events-on round was the lowest of its pair in
      // all four pairs of a run (0.797), as if that relay were still settling (docs/performance.md).
      await wrk(`${off.url}/64`, 32, 3);
      await wrk(`${on.url}/64`, 32, 3);
      measured.push({ sessionId: on.sessionId, from: Date.now() });
      const procs = {
        relay_off: off.pids.relay,
        client_off: off.pids.client,
        relay_on: on.pids.relay,
        client_on: on.pids.client,
        app: app.pid,
        ...pipelinePids,
      };
      cpuOff.watch(procs);
      cpuOn.watch(procs);
      const runOff = async () => offRuns.push(await cpuOff.around(() => wrk(`${off.url}/64`, 32, segment)));
      const runOn = async () => onRuns.push(await cpuOn.around(() => wrk(`${on.url}/64`, 32, segment)));
      // ABBA, so drift within the pair favours neither side.
      await runOff();
      await runOn();
      await runOn();
      await runOff();
      boosts += await on.metric('wingman_relay_event_thread_boosts_total');
    } finally {
      // The events-on relay publishes (or spools) what it still holds as it stops.
      await Promise.all([off.stop(), on.stop()]);
    }
  }
  await afterRounds();
  const sum = (runs: WrkResult[], f: (w: WrkResult) => number) => runs.reduce((a, w) => a + f(w), 0);
  // wrk counts completed requests; the relay also records requests cut off at the end of a run.
  const completed = sum(onRuns, (w) => w.requests);
  const which = measured
    .map((m) => `(session_id = '${m.sessionId}' AND ts >= fromUnixTimestamp64Milli(${m.from}))`)
    .join(' OR ');
  const stored = await eventually(
    async () =>
      Number(
        (
          await sql<{ c: string }>(nc, `SELECT count() AS c FROM requests WHERE status = 200 AND (${which})`)
        )[0]!.c,
      ),
    (c) => c >= completed,
    120_000,
    500,
  ).catch(() => -1);
  return {
    offRps: sum(offRuns, (w) => w.rps) / offRuns.length,
    onRps: sum(onRuns, (w) => w.rps) / onRuns.length,
    onP99Ms: Math.max(...onRuns.map((w) => w.p99Ms)),
    offP99Ms: Math.max(...offRuns.map((w) => w.p99Ms)),
    errors: sum(offRuns, (w) => w.errors) + sum(onRuns, (w) => w.errors),
    missing: stored < 0 ? completed : Math.max(0, completed - stored),
    boosts,
    rounds: [offRuns.map((w) => Math.round(w.rps)), onRuns.map((w) => Math.round(w.rps))],
    /** Each pair's own on/off ratio (its two runs each): how far one pair alone strays. */
    pairRatios: Array.from({ length: pairs }, (_, p) =>
      round(
        (onRuns[2 * p]!.rps + onRuns[2 * p + 1]!.rps) / (offRuns[2 * p]!.rps + offRuns[2 * p + 1]!.rps),
        3,
      ),
    ),
    cpuPerK: {
      off: cpuOff.perThousand(sum(offRuns, (w) => w.requests)),
      on: cpuOn.perThousand(sum(onRuns, (w) => w.requests)),
    },
  };
}

let nats: NatsProc | undefined;
let ingest: IngestProc | undefined;
let nc: NatsConnection | undefined;
try {
  await wrk(`${direct}/64`, 32, 1); // warm-up
  const directSmall = await wrk(`${direct}/64`, 32, seconds);
  const directLarge = await wrk(`${direct}/bytes/${MIB}`, 4, seconds);
  const { small, large } = await throughTunnel();
  let ev: Awaited<ReturnType<typeof eventsOnOff>> | undefined;
  if (args.events) {
    const natsProc = await startNats({ wrapper: pipelineWrapper });
    nats = natsProc;
    if (cpus) expectPinned('nats-server', natsProc.pid, [cpus.pipeline]);
    const runIngest = async () => {
      ingest = await startIngest(natsProc.url, { INGEST_SCHED: ingestSched }, [], pipelineWrapper);
      ingest.discardOutput();
      // chDB's threads too: they start from ingest's own, which inherit the CPU it was started on.
      if (cpus) expectPinned('ingest', ingest.pid, [cpus.pipeline]);
    };
    if (!args['ingest-after']) await runIngest();
    nc = await natsConnect(natsProc.url);
    const pipelinePids: Record<string, number> = { nats: natsProc.pid };
    if (ingest) pipelinePids.ingest = ingest.pid;
    ev = await eventsOnOff(
      natsProc.url,
      nc,
      pairs,
      args.smoke ? 2 : 4,
      pipelinePids,
      args['ingest-after'] ? runIngest : async () => {},
    );
  }
  process.stderr.write(
    `64 B @32c: direct ${round(directSmall.rps, 0)} rps, tunnel ${round(small.rps, 0)} rps (p50 ${small.p50Ms} ms, p99 ${small.p99Ms} ms)\n` +
      `1 MiB @4c: direct ${round(directLarge.mibPerS, 1)} MiB/s, tunnel ${round(large.mibPerS, 1)} MiB/s\n` +
      (ev
        ? `events off/on, interleaved rounds (rps): ${JSON.stringify(ev.rounds)}; events missing in ClickHouse: ${ev.missing}\n` +
          `on/off ratio of each pair: ${ev.pairRatios.join(', ')}\n` +
          `CPU ms per 1000 requests, events off: ${JSON.stringify(ev.cpuPerK.off)}\n` +
          `CPU ms per 1000 requests, events on:  ${JSON.stringify(ev.cpuPerK.on)}\n`
        : ''),
  );
  const errors = [directSmall, directLarge, small, large].reduce((a, r) => a + r.errors, ev?.errors ?? 0);
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
      ...(ev
        ? {
            tunnel_rps_events_off: round(ev.offRps, 0),
            tunnel_rps_events_on: round(ev.onRps, 0),
            tunnel_p99_ms_events_off: round(ev.offP99Ms),
            tunnel_p99_ms_events_on: round(ev.onP99Ms),
            ratio_events_on_off: round(ev.onRps / ev.offRps, 3),
            // How sure one run is of its ratio: over the pairs' own ratios (absent for one pair).
            ratio_events_on_off_ci95: meanCi95(ev.pairRatios)?.map((x) => round(x, 3)),
            events_missing: ev.missing,
            event_thread_boosts: ev.boosts,
            ingest_sched: ingestSched,
            event_thread_sched: eventThreadSched,
            // The relays' EVENT_ENCODING (they inherit this environment), with their default.
            encoding: natsConfigShape.EVENT_ENCODING.parse(process.env.EVENT_ENCODING),
            ...(cpus ? { pipeline_cpu: cpus.pipeline, tunnel_cpus: cpus.tunnel.join(',') } : {}),
          }
        : {}),
      seconds,
    }),
  );
} finally {
  await nc?.close();
  await ingest?.stop();
  await nats?.stop();
  await app.stop();
}
