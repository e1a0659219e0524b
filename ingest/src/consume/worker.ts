import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { type Consumer, type FetchOptions, type JsMsg, jetstream, PubHeaders } from '@nats-io/jetstream';
import { type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { type Logger, Topology } from '@wingman/shared';
import type { IngestConfig } from '../config.ts';
import type { IngestMetrics } from '../observability/metrics.ts';
import { insertRows } from '../sink/insert.ts';
import {
  type BatchPlan,
  chTime,
  type DlqEntry,
  emptyPlan,
  eventTimeWindow,
  type MaybeStored,
  planMessage,
  type TableName,
  withoutStored,
} from '../validate/plan-batch.ts';

export interface Worker {
  /** Resolves when the loop has stopped (after stop()). */
  done: Promise<void>;
  /** Finish the current batch (or leave it unacked), then stop fetching. */
  stop(): Promise<void>;
}

/** Backoff for retries: doubles per consecutive failure, capped. */
export function retryDelay(failures: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
}

/**
 * The consume loop: pull a batch, plan it, send bad events to the DLQ, insert
 * rows per table, and ack only after every insert succeeded. On ClickHouse
 * errors the batch is nak'ed with a backoff delay, so it stays in JetStream.
 */
export function startWorker(deps: {
  config: Readonly<IngestConfig>;
  /** The NATS connection: DLQ publishes go through JetStream on it, cut to its server's max_payload. */
  nc: NatsConnection;
  consumer: Consumer;
  ch: ClickHouseClient;
  metrics: IngestMetrics;
  log: Logger;
  /** How a pull is made; `consumer.fetch` unless a test wraps it to make a pull fail part-way. */
  pull?: (opts: FetchOptions) => ReturnType<Consumer['fetch']>;
}): Worker {
  const { config, nc, consumer, ch, metrics, log } = deps;
  const js = jetstream(nc);
  const pull = deps.pull ?? ((opts: FetchOptions) => consumer.fetch(opts));
  let stopping = false;
  let failures = 0;
  /**
   * The highest stream sequence delivered to this worker in an earlier batch. A message at or
   * below it was delivered before, whatever its delivery count says: a consumer whose state went
   * back (nats-server restarted before it wrote the state, or the consumer recreated) delivers
   * again as new what ingest already stored while its acks were lost. Its events are checked
   * against ClickHouse like a redelivery's, so they are not stored twice.
   */
  let highestSeq = 0;

  /** Insert every table's rows; returns the time spent checking for already-stored events. */
  async function insertPlan(plan: BatchPlan): Promise<number> {
    let checkMs = 0;
    for (const [table, rows] of plan.tables) {
      let toInsert = rows;
      const maybe = plan.maybeStored.get(table);
      if (maybe) {
        const t = performance.now();
        toInsert = withoutStored(rows, await storedIds(ch, table, maybe));
        checkMs += performance.now() - t;
      }
      if (toInsert.ids.length === 0) continue;
      const end = metrics.insertDuration.startTimer({ table });
      await insertRows(ch, table, toInsert);
      end();
      metrics.rowsInserted.inc({ table }, toInsert.ids.length);
    }
    return checkMs;
  }

  /**
   * Each entry goes with its own Nats-Msg-Id, so when the batch comes back (a DLQ publish failed
   * part-way, ingest died before the ack, or the consumer delivers it again) JetStream stores it
   * once, and only new entries count.
   */
  async function publishDlq(plan: BatchPlan): Promise<void> {
    let added = 0;
    for (const entry of plan.dlq) {
      const h = natsHeaders();
      h.set(Topology.dlqReasonHeader, entry.reason.replace(/\s+/g, ' ').slice(0, 1000));
      // Whatever the publisher put in it: a name longer than any real encoding is cut too.
      if (entry.encoding) h.set(Topology.encodingHeader, entry.encoding.slice(0, 64));
      // The server's limit now (its INFO), or nats-server's default should INFO be missing for a
      // moment (reconnecting).
      const payload = fitPayload(entry, h, nc.info?.max_payload ?? 1024 * 1024);
      const ack = await js.publish(Topology.dlqSubject, payload, { headers: h, msgID: entry.id });
      if (ack.duplicate) continue;
      added++;
      metrics.dlq.inc();
    }
    if (added > 0) log.warn({ count: added, first: plan.dlq[0]?.reason }, 'events sent to the DLQ');
  }

  /**
   * Insert a planned batch, send its bad events to the DLQ, then ack it; on failure nak it with a
   * backoff delay. Batches commit one at a time, in order.
   */
  async function commit(batch: JsMsg[], plan: BatchPlan): Promise<void> {
    const redelivered = batch.filter((m) => m.redelivered).length;
    if (redelivered > 0) metrics.redeliveries.inc(redelivered);
    const t0 = performance.now();
    let checkMs = 0;
    try {
      checkMs = await insertPlan(plan);
      // After the rows: a batch whose insert keeps failing (ClickHouse down for an hour) does not
      // publish its DLQ entries on every retry, past the DLQ's duplicate window.
      await publishDlq(plan);
    } catch (err) {
      failures++;
      const delay = retryDelay(failures, config.RETRY_MIN_MS, config.RETRY_MAX_MS);
      metrics.insertFailures.inc();
      log.error(
        { err: (err as Error).message, failures, retryInMs: delay },
        'batch failed; leaving it in JetStream',
      );
      for (const m of batch) m.nak(delay);
      await sleep(delay);
      return;
    }
    failures = 0;
    const t1 = performance.now();
    for (const m of batch) m.ack();
    log.debug(
      {
        events: plan.events,
        redelivered,
        checkMs: Math.round(checkMs),
        insertMs: Math.round(t1 - t0),
        ackMs: Math.round(performance.now() - t1),
      },
      'batch committed',
    );
    metrics.batches.inc();
    metrics.events.inc(plan.events);
  }

  /**
   * Pull into `batch` (messages arrive over up to FETCH_EXPIRES_MS). A pull that fails part-way
   * (for example after two missed heartbeats, seen when nats-server went quiet on a pull) keeps the messages it
   * already delivered: they are committed like any batch, instead of being dropped unacked and
   * redelivered only after ACK_WAIT_MS (10 s of lag for those events).
   */
  async function fetchInto(batch: JsMsg[]): Promise<void> {
    try {
      const iter = await pull({ max_messages: config.FETCH_BATCH, expires: config.FETCH_EXPIRES_MS });
      // nats-server before 2.9.15 (Debian's is 2.9.10) sometimes drops an expired pull without
      // sending its 408 (nats-server#3942). nats.js then waits for two missed heartbeats, ~2.5 s
      // for a 1 s pull, and every event waiting in JetStream waits with it (seen as a lag p99 of
      // 3 s in bench:pipeline). The server is done with the pull at its expiry, so end it
      // ourselves a little after: messages already received are still yielded. Should one still
      // arrive after that, it stays unacked and comes back after ACK_WAIT_MS; nothing is lost.
      let ended = false;
      const overdue = setTimeout(() => {
        // Not at once: after the event loop was held up (a busy machine; ingest runs under
        // SCHED_IDLE), this timer runs before the loop reads the socket, and messages the server
        // sent in time would reach a pull already ended. setImmediate runs after that read.
        setImmediate(() => {
          if (ended) return;
          // Logged, because a message the server still sends after this is redelivered (counted
          // in wingman_ingest_redeliveries_total) once ACK_WAIT_MS passes: this line explains it.
          log.warn({ received: batch.length }, 'pull outlived its expiry; ended it (nats-server#3942)');
          iter.stop();
        });
      }, config.FETCH_EXPIRES_MS + PULL_GRACE_MS);
      try {
        for await (const m of iter) batch.push(m);
      } finally {
        ended = true;
        clearTimeout(overdue);
      }
    } catch (err) {
      if (stopping) return;
      log.warn({ err: (err as Error).message, received: batch.length }, 'fetch failed; retrying');
      if (batch.length === 0) await sleep(500);
    }
  }

  // Fetch and plan the next batch while the previous one is being inserted (ClickHouse works on
  // its own threads), but commit strictly one batch at a time.
  const done = (async () => {
    let committing: Promise<void> = Promise.resolve();
    /** Messages pulled but not planned: the batch before them reached BATCH_MAX_BYTES. */
    let carried: JsMsg[] = [];
    while (!stopping) {
      const f0 = performance.now();
      // From its first message until it is acked or nak'ed, tell JetStream the batch is being
      // worked on, so a slow pull, plan, wait or insert does not pass ACK_WAIT_MS and get it
      // redelivered meanwhile. Carried messages come first: they were pulled before any new one.
      const pulled = carried;
      carried = [];
      const keepAlive = setInterval(
        () => {
          for (const m of pulled) m.working();
        },
        Math.max(250, Math.floor(config.ACK_WAIT_MS / 3)),
      );
      if (pulled.length === 0) await fetchInto(pulled);
      if (pulled.length === 0) {
        clearInterval(keepAlive);
        continue;
      }
      const p0 = performance.now();
      const { plan, planned } = await planInSlices(pulled);
      const batch = pulled.slice(0, planned);
      carried = pulled.slice(planned);
      log.debug(
        {
          messages: batch.length,
          carried: carried.length,
          bytes: plan.bytes,
          fetchMs: Math.round(p0 - f0),
          planMs: Math.round(performance.now() - p0),
        },
        'batch fetched',
      );
      await committing;
      committing = commit(batch, plan).finally(() => clearInterval(keepAlive));
    }
    await committing;
    // Pulled, never planned: back to JetStream now rather than after ACK_WAIT_MS.
    for (const m of carried) m.nak();
  })();

  /**
   * Plan a batch ~2000 events at a time, yielding to the event loop between slices: a batch
   * is ~0.4 s of JavaScript, and the previous batch's insert needs the loop to hand its rows to
   * ClickHouse. Planned in one go, the insert would wait for the plan and the two would run
   * one after the other instead of side by side. Planning stops once the plan holds
   * BATCH_MAX_BYTES; `planned` says how many of `batch`'s messages it took.
   */
  async function planInSlices(batch: JsMsg[]): Promise<{ plan: BatchPlan; planned: number }> {
    const plan = emptyPlan(eventTimeWindow(config.RAW_TTL_DAYS, Date.now()));
    let sliced = 0;
    let planned = 0;
    const seenBefore = highestSeq;
    for (const m of batch) {
      // At least one message per batch, however large; the rest wait for the next batch.
      if (planned > 0 && plan.bytes >= config.BATCH_MAX_BYTES) break;
      planned++;
      if (m.seq > highestSeq) highestSeq = m.seq;
      // The stream sequence names a message for good (a redelivery keeps it); its Nats-Msg-Id, where
      // it has one, keeps ids apart should the stream be recreated within the duplicate window.
      const msgId = m.headers?.get(PubHeaders.MsgIdHdr);
      // A publisher's id can be long; the DLQ ids must stay short (fitPayload keeps room for them).
      const idPart = msgId && msgId.length > 64 ? createHash('sha256').update(msgId).digest('hex') : msgId;
      planMessage(plan, {
        data: m.data,
        encoding: m.headers?.get(Topology.encodingHeader),
        mayRepeat: m.redelivered || m.headers?.get(Topology.replayedHeader) === '1' || m.seq <= seenBefore,
        dlqId: idPart ? `${m.seq}:${idPart}` : String(m.seq),
      });
      const total = plan.events + plan.dlq.length;
      if (total - sliced >= PLAN_SLICE_EVENTS) {
        sliced = total;
        await new Promise((r) => setImmediate(r));
      }
    }
    return { plan, planned };
  }

  return {
    done,
    async stop() {
      stopping = true;
      await done;
    },
  };
}

/** Room kept in a DLQ message for the headers set after fitPayload: Nats-Msg-Id and the truncation mark. */
const DLQ_HEADER_ROOM = 512;

/**
 * The entry's payload, cut to fit in one NATS message with its headers. A bad envelope is at most
 * max_payload already, but the DLQ message adds headers, and one bad event can be far larger: an
 * envelope may inflate to 32 MiB. A payload over max_payload would be refused on every try, and
 * its batch retried for ever behind it; cut, it keeps its first bytes, and the
 * `Wingman-Dlq-Truncated` header (set on `h`) says how large it was.
 */
export function fitPayload(
  entry: Readonly<DlqEntry>,
  h: ReturnType<typeof natsHeaders>,
  maxPayload: number,
): Uint8Array | string {
  const room = maxPayload - headerBytes(h) - DLQ_HEADER_ROOM;
  const size =
    typeof entry.payload === 'string' ? Buffer.byteLength(entry.payload) : entry.payload.byteLength;
  if (size <= room) return entry.payload;
  h.set(Topology.dlqTruncatedHeader, String(size));
  const bytes = typeof entry.payload === 'string' ? Buffer.from(entry.payload) : entry.payload;
  return bytes.subarray(0, Math.max(0, room));
}

/** The size of `h` on the wire: `NATS/1.0`, a `key: value` line for each value, a blank line. */
function headerBytes(h: ReturnType<typeof natsHeaders>): number {
  let n = 'NATS/1.0\r\n\r\n'.length;
  for (const k of h.keys()) for (const v of h.values(k)) n += Buffer.byteLength(`${k}: ${v}\r\n`);
  return n;
}

/** Which of the events that may be stored already are in `table`, looked up within their time range (partition pruning). */
async function storedIds(
  ch: ClickHouseClient,
  table: TableName,
  maybe: Readonly<MaybeStored>,
): Promise<Set<string>> {
  const result = await ch.query({
    query: `SELECT event_id FROM ${table} WHERE ts >= {min:DateTime64(3, 'UTC')} AND ts <= {max:DateTime64(3, 'UTC')} AND event_id IN {ids:Array(String)}`,
    query_params: { min: chTime(maybe.minTs), max: chTime(maybe.maxTs), ids: [...maybe.ids] },
    format: 'JSONEachRow',
  });
  return new Set((await result.json<{ event_id: string }>()).map((r) => r.event_id));
}

/** Events planned between yields to the event loop (~15 ms of JavaScript). */
const PLAN_SLICE_EVENTS = 2000;
/** How long past its expiry a pull may go without the server's end of it (fetchInto). */
const PULL_GRACE_MS = 250;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
