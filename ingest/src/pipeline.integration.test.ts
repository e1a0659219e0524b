import { type JetStreamManager, jetstream, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { encodeEnvelope, Topology } from '@wingman/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { envelopeJson, requestCompletedEvent } from '../../test/fixtures/events.ts';
import { request, requestsOk } from '../../test/helpers/http.ts';
import {
  chdbExec,
  eventually,
  type IngestProc,
  natsConnect,
  sql,
  startIngest,
  startNats,
  unacked,
} from '../../test/helpers/pipeline.ts';
import {
  metricValue,
  type Proc,
  SCHED,
  startClient,
  startLocalApp,
  startRelay,
} from '../../test/helpers/processes.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

/** Send n requests through the tunnel, 16 at a time; returns how many got a 200. */
const traffic = (base: string, n: number, path = (i: number) => `users/${i}?q=${i}`): Promise<number> =>
  requestsOk(n, 16, (i) => `${base}${path(i)}`, {
    'user-agent': 'pipeline-test',
    referer: 'https://ref.example.com/p',
  });

const countRequests = async (nc: NatsConnection) =>
  Number(
    (await sql<{ c: string }>(nc, "SELECT count() AS c FROM requests WHERE user_agent = 'pipeline-test'"))[0]!
      .c,
  );

/** Wait until n rows are in, give late duplicates time to land, and require exactly n. */
async function expectExactly(nc: NatsConnection, n: number): Promise<void> {
  await eventually(
    () => countRequests(nc),
    (c) => c >= n,
    60_000,
  );
  await new Promise((r) => setTimeout(r, 1500));
  expect(await countRequests(nc)).toBe(n);
}

describe('event pipeline: relay -> NATS JetStream -> ingest -> ClickHouse (chDB)', () => {
  const procs: Proc[] = [];
  const conns: NatsConnection[] = [];
  afterEach(async () => {
    await Promise.all(conns.splice(0).map((c) => c.close()));
    await Promise.all(
      procs
        .splice(0)
        .reverse()
        .map((p) => p.stop('SIGKILL')),
    );
  });

  async function stack(
    opts: { relayEnv?: Record<string, string>; ingest?: boolean; ingestEnv?: Record<string, string> } = {},
  ) {
    const nats = await startNats();
    procs.push(nats);
    const [relay, app] = await Promise.all([
      startRelay({ NATS_URL: nats.url, ...opts.relayEnv }),
      startLocalApp(),
    ]);
    procs.push(relay, app);
    const client = await startClient(relay, app.port);
    procs.push(client);
    let ingest: IngestProc | undefined;
    if (opts.ingest !== false) {
      ingest = await startIngest(nats.url, opts.ingestEnv);
      procs.push(ingest);
    }
    const nc = await natsConnect(nats.url);
    conns.push(nc);
    return { nats, relay, app, client, ingest, nc, base: client.session.urls.path };
  }

  /** Stop ingest, change its chDB directly (only one process may open it), start it again with `env`. */
  async function restartIngestAfter(
    ingest: IngestProc,
    natsUrl: string,
    statements: string[],
    env: Record<string, string>,
  ): Promise<IngestProc> {
    await ingest.stop('SIGTERM');
    for (const statement of statements) await chdbExec(ingest.chdbPath, statement);
    const next = await startIngest(natsUrl, { CHDB_PATH: ingest.chdbPath, ...env });
    procs.push(next);
    return next;
  }

  /** A valid request.completed event as a test publishes it straight to JetStream. */
  const valid = (i: number) =>
    requestCompletedEvent({
      session_id: 'dlqsession1',
      host_kind: 'host',
      duration_ms: 1,
      ttfb_ms: 1,
      bytes_out: i,
      path: '/',
      visitor_ip: '8.8.8.8',
      user_agent: 'pipeline-test',
    });

  const ingestMetrics = async (p: IngestProc) =>
    (await request(`http://127.0.0.1:${p.httpPort}/metrics`)).body.toString();

  /** nats-server and ingest without a relay: the test publishes envelopes to JetStream itself. */
  async function natsAndIngest(ingestEnv?: Record<string, string>) {
    const nats = await startNats();
    procs.push(nats);
    const ingest = await startIngest(nats.url, ingestEnv);
    procs.push(ingest);
    const nc = await natsConnect(nats.url);
    conns.push(nc);
    const jsm = await jetstreamManager(nc);
    return { nats, ingest, nc, jsm, js: jetstream(nc), subject: Topology.eventsSubject('test-relay') };
  }

  /** Every message in the DLQ stream, oldest first. */
  async function dlqMessages(jsm: JetStreamManager): Promise<StoredMsg[]> {
    const { state } = await jsm.streams.info(Topology.dlqStream);
    const out: StoredMsg[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++)
      out.push((await jsm.streams.getMessage(Topology.dlqStream, { seq }))!);
    return out;
  }

  /**
   * What a nats-server restart that lost the consumer's state does: the durable consumer starts
   * over and delivers every message again, with a delivery count of 1. Resolves once ingest has
   * acked them all again.
   */
  async function restartConsumer(jsm: JetStreamManager): Promise<void> {
    const { config } = await jsm.consumers.info(Topology.eventsStream, Topology.ingestConsumer);
    await jsm.consumers.delete(Topology.eventsStream, Topology.ingestConsumer);
    await jsm.consumers.add(Topology.eventsStream, config);
    const last = (await jsm.streams.info(Topology.eventsStream)).state.last_seq;
    await eventually(
      () => jsm.consumers.info(Topology.eventsStream, Topology.ingestConsumer),
      (i) => i.ack_floor.stream_seq >= last,
    );
  }

  it('N requests through a real tunnel become exactly N request.completed rows with correct fields', async () => {
    // Scheduled as `npm start` runs them: ingest and the relay's NATS thread (the relay's default,
    // EVENT_THREAD_SCHED=idle) under SCHED_IDLE.
    const { nc, base, client, ingest, relay } = await stack({
      ingestEnv: { INGEST_SCHED: 'idle' },
    });
    const n = 300;
    const started = Date.now();
    expect(await traffic(base, n)).toBe(n);
    const finished = Date.now();
    // One visitor request that never reaches a client.
    expect(
      (
        await request(base.replace(client.session.sessionId, 'nosuchsession1'), {
          headers: { 'user-agent': 'pipeline-test' },
        })
      ).status,
    ).toBe(404);
    await eventually(
      () => countRequests(nc),
      (c) => c >= n + 1,
    );
    const rows = await sql<Record<string, string | number>>(
      nc,
      "SELECT session_id, method, host_kind, status, path, referrer_host, visitor_ip, error_code, bytes_out, duration_ms >= ttfb_ms AS ttfb_ok, count() AS c FROM requests WHERE user_agent = 'pipeline-test' GROUP BY ALL ORDER BY status, bytes_out",
    );
    const ok = rows.filter((r) => Number(r.status) === 200);
    expect(ok.reduce((a, r) => a + Number(r.c), 0)).toBe(n);
    for (const r of ok) {
      expect(r).toMatchObject({
        session_id: client.session.sessionId,
        method: 'GET',
        host_kind: 'path',
        path: '/users/:id',
        referrer_host: 'ref.example.com',
        visitor_ip: '127.0.0.1',
        error_code: '',
        ttfb_ok: 1,
      });
      expect(Number(r.bytes_out)).toBeGreaterThan(100);
    }
    expect(rows.find((r) => Number(r.status) === 404)).toMatchObject({
      session_id: 'nosuchsession1',
      error_code: 'SESSION_NOT_FOUND',
    });
    expect(Number(rows.find((r) => Number(r.status) === 404)?.c)).toBe(1);
    // Timestamps survive the trip as the same instants (ms since the epoch, UTC).
    const [span] = await sql<{ lo: string; hi: string }>(
      nc,
      "SELECT min(toUnixTimestamp64Milli(ts)) AS lo, max(toUnixTimestamp64Milli(ts)) AS hi FROM requests WHERE user_agent = 'pipeline-test' AND status = 200",
    );
    expect(Number(span!.lo)).toBeGreaterThanOrEqual(started);
    expect(Number(span!.hi)).toBeLessThanOrEqual(finished);
    // Exactly once: no duplicate rows even before merges, and the per-minute rollup agrees.
    expect(await countRequests(nc)).toBe(n + 1);
    const rolled = await sql<{ s: string }>(
      nc,
      `SELECT sum(requests) AS s FROM requests_by_session_1m WHERE session_id = '${client.session.sessionId}'`,
    );
    expect(Number(rolled[0]!.s)).toBe(n);
    // Session lifecycle and connection events arrived too.
    const types = await sql<{ type: string }>(
      nc,
      `SELECT type FROM sessions WHERE session_id = '${client.session.sessionId}' UNION ALL SELECT type FROM connections WHERE session_id = '${client.session.sessionId}'`,
    );
    expect(types.map((t) => t.type).sort()).toEqual([
      'connection.attempt',
      'connection.opened',
      'session.created',
    ]);
    // With INGEST_SCHED=idle, every ingest thread, chDB's (started after ingest set the policy)
    // included, runs under SCHED_IDLE (5). The relay's run under the default SCHED_OTHER (0),
    // but for its NATS thread: SCHED_IDLE (EVENT_THREAD_SCHED=idle, the default).
    const ingestThreads = ingest!.threadScheduling();
    expect(ingestThreads.some((t) => /MergeMutate|BgSchPool|ThreadPool/.test(t.thread))).toBe(true);
    expect(ingestThreads.filter((t) => t.policy !== SCHED.IDLE)).toEqual([]);
    const natsThread = JSON.parse(await relay.waitFor((l) => l.includes('NATS thread cpu scheduling'))).tid;
    const relayThreads = relay.threadScheduling();
    expect(relayThreads.filter((t) => t.policy !== SCHED.OTHER)).toEqual([
      { tid: natsThread, thread: expect.any(String), policy: SCHED.IDLE },
    ]);
  });

  it('ingest killed with SIGKILL mid-batch and restarted: still exactly N rows', async () => {
    const { nats, nc, base, ingest } = await stack();
    const n = 2000;
    const sending = traffic(base, n);
    // Kill as soon as some rows are in, while traffic is still flowing.
    await eventually(
      () => countRequests(nc),
      (c) => c > 0,
      30_000,
      20,
    );
    await ingest!.stop('SIGKILL');
    expect(await sending).toBe(n);
    const again = await startIngest(nats.url, { CHDB_PATH: ingest!.chdbPath });
    procs.push(again);
    await expectExactly(nc, n);
    const rolled = await sql<{ s: string }>(
      nc,
      "SELECT sum(requests) AS s FROM requests_by_ip_1m WHERE visitor_ip = '127.0.0.1'",
    );
    expect(Number(rolled[0]!.s)).toBe(n);
  }, 120_000);

  it('nats-server stopped for 10 s during traffic: the relay spools, replays in order, and there are exactly N rows', async () => {
    const { nats, nc, base, relay } = await stack();
    const n = 600;
    const first = await traffic(base, n / 3);
    await nats.stop('SIGTERM');
    const during = await traffic(base, n / 3);
    // The shipper worker reports its spool size a few times a second.
    const relayMetrics = async () => (await request(`${relay.url}/metrics`)).body.toString();
    await eventually(relayMetrics, (m) => metricValue(m, 'wingman_relay_spool_bytes') > 0);
    await new Promise((r) => setTimeout(r, 10_000));
    const nats2 = await startNats({ port: nats.port, storeDir: nats.storeDir });
    procs.push(nats2);
    const last = await traffic(base, n / 3);
    expect(first + during + last).toBe(n);
    await expectExactly(nc, n);
    const after = await eventually(relayMetrics, (m) => /wingman_relay_spool_bytes 0\b/.test(m));
    expect(after).toMatch(/wingman_relay_events_dropped_total 0\b/);
  }, 120_000);

  it('a relay stopped (SIGTERM) while nats-server is down spools its events; the next relay on its data directory replays them: exactly N rows', async () => {
    const dataDir = tempDir('wingman-relay-');
    const { nats, nc, base, client, relay } = await stack({ relayEnv: { DATA_DIR: dataDir } });
    const sessionId = client.session.sessionId;
    const n = 400;
    const first = await traffic(base, n / 2);
    await nats.stop('SIGTERM');
    const during = await traffic(base, n / 2);
    expect(first + during).toBe(n);
    // Stopping ends the session (session.closed) and seals what is open; with NATS away, all of it
    // goes to the spool on disk, and nothing is left to publish after the process exits.
    await client.stop('SIGKILL');
    await relay.stop('SIGTERM');
    expect(relay.child.exitCode).toBe(0);
    const nats2 = await startNats({ port: nats.port, storeDir: nats.storeDir });
    procs.push(nats2);
    const next = await startRelay({ NATS_URL: nats.url, DATA_DIR: dataDir });
    procs.push(next);
    await expectExactly(nc, n);
    const lifecycle = await sql<{ type: string; reason: string; requests: number }>(
      nc,
      `SELECT type, reason, requests FROM sessions WHERE session_id = '${sessionId}' ORDER BY ts, type`,
    );
    expect(lifecycle).toEqual([
      { type: 'session.created', reason: '', requests: 0 },
      { type: 'session.closed', reason: 'shutdown', requests: n },
    ]);
    const metrics = await eventually(
      async () => (await request(`${next.url}/metrics`)).body.toString(),
      (m) => /wingman_relay_spool_bytes 0\b/.test(m),
    );
    expect(metrics).toMatch(/wingman_relay_events_dropped_total 0\b/);
  }, 120_000);

  it('messages the consumer delivers again as new (its state lost) are checked against ClickHouse, not stored twice', async () => {
    const { nc, base } = await stack();
    const n = 100;
    expect(await traffic(base, n)).toBe(n);
    await expectExactly(nc, n);
    // Seen once in CI as 681 rows for 600 in the test above.
    await restartConsumer(await jetstreamManager(nc));
    expect(await countRequests(nc)).toBe(n);
  }, 120_000);

  it('a batch whose insert outlasts the ack wait stays in progress: nothing is redelivered, exactly N rows', async () => {
    const { nats, nc, base, ingest } = await stack();
    // Make every insert into requests take 2.5 s (a materialized view that sleeps per block), and the ack wait 1 s.
    const slow = await restartIngestAfter(
      ingest!,
      nats.url,
      [
        'CREATE TABLE slow_sink (n UInt8) ENGINE = Null',
        'CREATE MATERIALIZED VIEW slow_mv TO slow_sink AS SELECT toUInt8(sleep(2.5)) AS n FROM requests',
      ],
      { ACK_WAIT_MS: '1000' },
    );
    const n = 150;
    expect(await traffic(base, n)).toBe(n);
    await expectExactly(nc, n);
    const scrape = await ingestMetrics(slow);
    expect(
      Number(/wingman_ingest_insert_duration_seconds_sum\{table="requests"\} ([\d.]+)/.exec(scrape)?.[1]),
    ).toBeGreaterThan(2);
    // If this ever fails, ingest's warnings say why (a pull that failed on missed heartbeats leaves
    // the messages the server sends after it to be redelivered once the 1 s ack wait passes).
    expect(scrape, slow.lines.filter((l) => /"level":[456]0/.test(l)).join('\n')).toMatch(
      /wingman_ingest_redeliveries_total 0\b/,
    );
  }, 120_000);

  it('ClickHouse inserts failing for a while leave messages unacked; after recovery there are exactly N rows', async () => {
    const { nats, nc, base, ingest } = await stack();
    // Break the warehouse: rename the requests table away (migrations are recorded, so it stays gone).
    const broken = await restartIngestAfter(ingest!, nats.url, ['RENAME TABLE requests TO requests_parked'], {
      RETRY_MIN_MS: '100',
      RETRY_MAX_MS: '500',
    });
    const n = 200;
    expect(await traffic(base, n)).toBe(n);
    const scrape = () => ingestMetrics(broken);
    await eventually(scrape, (m) => /wingman_ingest_insert_failures_total [1-9]/.test(m));
    expect(await scrape()).not.toMatch(/wingman_ingest_rows_inserted_total\{table="requests"\} [1-9]/);
    expect(await unacked(nc)).toBeGreaterThan(0);
    // Recover: stop the worker (it leaves its batch unacked), restore the table, start again.
    await restartIngestAfter(broken, nats.url, ['RENAME TABLE requests_parked TO requests'], {});
    await eventually(
      () => countRequests(nc),
      (c) => c >= n,
      60_000,
    );
    await eventually(
      () => unacked(nc),
      (u) => u === 0,
    );
    expect(await countRequests(nc)).toBe(n);
  }, 120_000);

  it('malformed events go to the DLQ with reasons; valid events after them are ingested', async () => {
    const { ingest, nc, jsm, js, subject } = await natsAndIngest();
    await js.publish(subject, 'this is not json', { msgID: 'bad-1' });
    await js.publish(subject, JSON.stringify({ v: 2, nope: true }), { msgID: 'bad-2' });
    await js.publish(
      subject,
      envelopeJson('mixed', [
        { ...valid(1), type: 'made.up' },
        { ...valid(2), status: 'two hundred' },
        valid(3),
      ]),
      { msgID: 'mixed' },
    );
    // Encoded as the relay sends them by default; a corrupt one goes to the DLQ as it came.
    const br = natsHeaders();
    br.set(Topology.encodingHeader, 'br');
    await js.publish(subject, new Uint8Array([0x1b, 0xff, 0x00, 0x42]), { msgID: 'bad-br', headers: br });
    const good = encodeEnvelope(envelopeJson('good', [valid(4), valid(5)]), 'br');
    await js.publish(subject, good.data, { msgID: 'good', headers: br });
    await eventually(
      () => countRequests(nc),
      (c) => c >= 3,
    );
    expect(await countRequests(nc)).toBe(3);
    const enriched = await sql<{ country: string; framework: string }>(
      nc,
      "SELECT DISTINCT country, framework FROM requests WHERE session_id = 'dlqsession1'",
    );
    expect(enriched).toEqual([{ country: 'US', framework: 'Express' }]);
    const dlq = await eventually(
      () => dlqMessages(jsm),
      (d) => d.length >= 5,
    );
    expect(dlq).toHaveLength(5);
    const reasons = dlq.map((m) => m.header.get(Topology.dlqReasonHeader));
    const encodings = dlq.map((m) => m.header.get(Topology.encodingHeader));
    expect(reasons[0]).toMatch(/bad envelope: not valid JSON/);
    expect(reasons[1]).toMatch(/bad envelope/);
    expect(reasons.slice(2, 4).join('\n')).toMatch(/invalid event/);
    expect(reasons.slice(2, 4).join('\n')).toMatch(/status/);
    expect(reasons[4]).toMatch(/^bad envelope: cannot inflate \(br\)/);
    expect(encodings).toEqual(['', '', '', '', 'br']);
    expect(await ingestMetrics(ingest)).toMatch(/wingman_ingest_dlq_total 5/);
    expect(await unacked(nc)).toBe(0);
  });

  it('a batch retried or delivered again puts each bad event in the DLQ once', async () => {
    const { nats, ingest: first, nc, jsm, js, subject } = await natsAndIngest();
    // Break the warehouse while ingest is stopped, and queue the batch meanwhile, so that both
    // messages arrive in the first pull of the broken ingest.
    await first.stop('SIGTERM');
    await chdbExec(first.chdbPath, 'RENAME TABLE requests TO requests_parked');
    await js.publish(subject, envelopeJson('mixed', [{ ...valid(1), type: 'made.up' }, valid(2)]), {
      msgID: 'mixed',
    });
    // One without a Nats-Msg-Id: its DLQ entry is named by its stream sequence alone.
    await js.publish(subject, 'this is not json');
    const broken = await startIngest(nats.url, {
      CHDB_PATH: first.chdbPath,
      RETRY_MIN_MS: '100',
      RETRY_MAX_MS: '200',
    });
    procs.push(broken);
    // While its insert fails, the batch's DLQ entries wait with it: nothing is published per retry.
    await eventually(
      () => ingestMetrics(broken),
      (m) => /wingman_ingest_insert_failures_total ([3-9]|\d\d+)\b/.test(m),
    );
    expect(await dlqMessages(jsm)).toEqual([]);
    expect(await ingestMetrics(broken)).toMatch(/wingman_ingest_dlq_total 0\b/);
    // Recover: the batch is inserted, then its two bad parts go to the DLQ.
    const recovered = await restartIngestAfter(
      broken,
      nats.url,
      ['RENAME TABLE requests_parked TO requests'],
      {},
    );
    await eventually(
      () => unacked(nc),
      (u) => u === 0,
      60_000,
    );
    expect(await countRequests(nc)).toBe(1);
    expect(await dlqMessages(jsm)).toHaveLength(2);
    expect(await ingestMetrics(recovered)).toMatch(/wingman_ingest_dlq_total 2\b/);
    // Both messages come again, as new: their DLQ entries are published again, and JetStream
    // keeps one of each (Nats-Msg-Id).
    await restartConsumer(jsm);
    const dlq = await dlqMessages(jsm);
    expect(dlq).toHaveLength(2);
    expect(await countRequests(nc)).toBe(1);
    expect(await ingestMetrics(recovered)).toMatch(/wingman_ingest_dlq_total 2\b/);
    const reasons = dlq.map((m) => m.header.get(Topology.dlqReasonHeader));
    expect(reasons[0]).toMatch(/invalid event/);
    expect(reasons[1]).toMatch(/bad envelope: not valid JSON/);
  }, 120_000);

  it('bad messages too large for the DLQ as they are (payload or headers) go there cut, and do not hold up the events after them', async () => {
    const { ingest, nc, jsm, js, subject } = await natsAndIngest();
    const maxPayload = nc.info!.max_payload;
    // Not JSON, and as large as a message may be: the DLQ's headers would push it over max_payload.
    const notJson = Buffer.alloc(maxPayload - 200, 0x41);
    await js.publish(subject, notJson, { msgID: 'huge-bad' });
    // One bad event of 3 MB (a user agent far over 512 characters), in an envelope that inflates to it.
    const br = natsHeaders();
    br.set(Topology.encodingHeader, 'br');
    const hugeEvent = { ...valid(1), user_agent: 'u'.repeat(3 * 1024 * 1024) };
    const packed = encodeEnvelope(envelopeJson('huge-event', [hugeEvent, valid(2)]), 'br');
    expect(Buffer.byteLength(packed.data)).toBeLessThan(maxPayload);
    await js.publish(subject, packed.data, { msgID: 'huge-event', headers: br });
    // Headers a publisher made long: a 2000-character Nats-Msg-Id and an unknown 5000-character encoding.
    const odd = natsHeaders();
    odd.set(Topology.encodingHeader, 'z'.repeat(5000));
    await js.publish(subject, 'x', { msgID: 'i'.repeat(2000), headers: odd });
    await js.publish(subject, envelopeJson('after', [valid(3), valid(4)]), { msgID: 'after' });

    await eventually(
      () => countRequests(nc),
      (c) => c >= 3,
    );
    await eventually(
      () => unacked(nc),
      (u) => u === 0,
    );
    expect(await countRequests(nc)).toBe(3);
    const dlq = await dlqMessages(jsm);
    expect(dlq).toHaveLength(3);
    const [envelope, event, oddOne] = dlq;
    expect(envelope!.header.get(Topology.dlqReasonHeader)).toMatch(/bad envelope: not valid JSON/);
    expect(envelope!.header.get(Topology.dlqTruncatedHeader)).toBe(String(notJson.byteLength));
    expect(Buffer.from(envelope!.data).equals(notJson.subarray(0, envelope!.data.byteLength))).toBe(true);
    expect(event!.header.get(Topology.dlqReasonHeader)).toMatch(/invalid event.*user_agent/);
    const eventJson = JSON.stringify(hugeEvent);
    expect(event!.header.get(Topology.dlqTruncatedHeader)).toBe(String(eventJson.length));
    expect(event!.string()).toBe(eventJson.slice(0, event!.data.byteLength));
    expect(event!.data.byteLength).toBeLessThan(maxPayload);
    expect(oddOne!.header.get(Topology.dlqReasonHeader)).toMatch(/^bad envelope: .*Content-Encoding/);
    expect(oddOne!.header.get(Topology.encodingHeader)).toBe('z'.repeat(64));
    expect(oddOne!.string()).toBe('x');
    expect(await ingestMetrics(ingest)).toMatch(/wingman_ingest_dlq_total 3\b/);
  }, 120_000);

  it('events over more days than one insert may touch by default are stored; times out of range go to the DLQ', async () => {
    const { nc, jsm, js, subject } = await natsAndIngest({ RAW_TTL_DAYS: '200' });
    const day = 24 * 3_600_000;
    const now = Date.now();
    // 150 day partitions in one insert: over ClickHouse's default limit of 100, which would fail
    // the insert on every retry.
    const spread = Array.from({ length: 150 }, (_, i) => ({ ...valid(i), ts: now - i * day }));
    const outOfRange = [
      { ...valid(1000), ts: now - 201 * day },
      { ...valid(1001), ts: now + 2 * day },
    ];
    await js.publish(subject, envelopeJson('spread', [...spread, ...outOfRange]), { msgID: 'spread' });
    await eventually(
      () => unacked(nc),
      (u) => u === 0,
      60_000,
    );
    expect(await countRequests(nc)).toBe(150);
    const days = await sql<{ d: string }>(
      nc,
      "SELECT uniqExact(toDate(ts)) AS d FROM requests WHERE user_agent = 'pipeline-test'",
    );
    expect(Number(days[0]!.d)).toBe(150);
    const dlq = await dlqMessages(jsm);
    expect(dlq).toHaveLength(2);
    const reasons = dlq.map((m) => m.header.get(Topology.dlqReasonHeader));
    expect(reasons[0]).toMatch(
      /^event time out of range: .* older than the raw tables keep \(RAW_TTL_DAYS\)/,
    );
    expect(reasons[1]).toMatch(/^event time out of range: .* ahead of ingest's clock/);
  }, 120_000);
});
