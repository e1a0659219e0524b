import { Worker } from 'node:worker_threads';
import {
  type Logger,
  leaveIdleDenied,
  type NatsConfig,
  natsConfigShape,
  type SchedPolicy,
  setThreadSched,
} from '@wingman/shared';
import type { EventPublisher } from './publisher.ts';
import type { EventSink, PublishOptions } from './sink.ts';

/** Messages to the NATS worker thread (nats-worker.ts). */
export type ToNatsWorker =
  | { type: 'publish'; n: number; subject: string; data: Uint8Array | string; opts: PublishOptions }
  | { type: 'close' };

/** EVENT_THREAD_SCHED: the NATS thread's CPU scheduling (shared/src/process/sched.ts). */
export type NatsThreadSched = SchedPolicy | 'normal';

/** What the NATS worker thread starts with. */
export interface NatsWorkerData {
  config: NatsConfig;
  sched: NatsThreadSched;
}

/** Messages from the NATS worker thread. */
export type FromNatsWorker =
  | { type: 'link'; up: boolean; first: boolean }
  | { type: 'published'; n: number; error?: string }
  | { type: 'failed'; error: string }
  /** The thread's CPU scheduling (EVENT_THREAD_SCHED) and its Linux thread id, or why its policy failed. */
  | { type: 'sched'; policy: NatsThreadSched; tid?: number; error?: string };

export interface NatsLink {
  /** The worker thread that holds the NATS connection; undefined while it is being restarted. */
  readonly thread: Worker | undefined;
  /** The thread reports NATS connected: envelopes go to it, not to the spool. */
  readonly connected: boolean;
  /** Stop publishing, drain the NATS connection and end the thread (terminated after 1 s). */
  close(): Promise<void>;
}

/**
 * Under EVENT_THREAD_SCHED=idle the NATS thread runs only on CPU time nothing else wants. On a
 * host whose CPUs stay busy it would fall behind without end, so while its backlog is large it is
 * raised to SCHED_BATCH (a normal share of the CPU, still without preempting the event loop), and
 * put back under SCHED_IDLE once it has caught up:
 * - behind: the in-memory queue at least BOOST_FILL full (2 MiB of the default 8 MiB, a few
 *   thousand events), or spooled envelopes waiting while NATS is up (a replay);
 * - caught up: the queue below UNBOOST_FILL and the spool empty.
 * Checked every BOOST_CHECK_MS. Under the tunnel benchmark's load the queue held at most a few
 * hundred events (docs/performance.md), far below BOOST_FILL: the boost is for a saturated host.
 */
export const BOOST_FILL = 0.25;
export const UNBOOST_FILL = 0.05;
const BOOST_CHECK_MS = 250;

/** What the booster reads of the publisher. */
export interface Backlog {
  /** Share of EVENT_BUFFER_MAX_BYTES in use (EventPublisher.queueFill). */
  readonly queueFill: number;
  /** Envelopes wait in the disk spool. */
  readonly spooled: boolean;
}

/** Whether the NATS thread should run boosted (SCHED_BATCH), given whether it is now. */
export function shouldBoost(backlog: Backlog, linkUp: boolean, boosted: boolean): boolean {
  if (!boosted) return linkUp && (backlog.queueFill >= BOOST_FILL || backlog.spooled);
  return backlog.queueFill >= UNBOOST_FILL || backlog.spooled;
}

/**
 * After the worker thread dies (it should not), a new one starts this much later: 1 s, doubling
 * for each death in a row up to 30 s, so a thread that cannot start (say, its module fails to
 * load) is not restarted and logged every second. A thread that reaches NATS resets the count.
 */
export function restartDelayMs(deathsInARow: number): number {
  return Math.min(1000 * 2 ** Math.max(0, deathsInARow - 1), 30_000);
}

/**
 * Connect to NATS in the background, on a worker thread, and keep the
 * publisher pointed at it while connected. The relay serves tunnels whether or
 * not NATS is up: until it is, events go to the spool. The publish itself (a
 * socket write of up to EVENT_ENVELOPE_MAX_BYTES) happens on that thread, off
 * the event loop that serves visitors. A full envelope is in shared memory
 * (EnvelopeBuilder), so handing it over is not a copy.
 */
export function linkNats(
  config: NatsConfig,
  publisher: EventPublisher,
  log: Logger,
  /** EVENT_THREAD_SCHED (tests pass `normal`: their thread should not wait on a busy machine). */
  requested: NatsThreadSched,
  metrics?: { threadBoosts: { inc(): void } },
): NatsLink {
  // A thread under SCHED_IDLE that this process could not raise again would fall behind for as
  // long as the CPUs stay busy (see BOOST_FILL): without that right, `batch` instead. (Elsewhere
  // than on Linux the thread says that it has no SCHED_IDLE at all.)
  const denied = requested === 'idle' && process.platform === 'linux' ? leaveIdleDenied() : undefined;
  const sched: NatsThreadSched = denied ? 'batch' : requested;
  if (denied)
    log.warn(
      { reason: denied },
      'EVENT_THREAD_SCHED=idle: the NATS thread could not be raised when it falls behind; running it as batch',
    );
  let worker: Worker | undefined;
  let closed = false;
  let seq = 0;
  let up = false;
  /** Threads that died since one last reached NATS. */
  let deaths = 0;
  const pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

  const sink: EventSink = {
    publish(subject, data, opts) {
      const w = worker;
      if (!w) return Promise.reject(new Error('NATS worker thread not running'));
      const n = ++seq;
      return new Promise<void>((resolve, reject) => {
        pending.set(n, { resolve, reject });
        w.postMessage({ type: 'publish', n, subject, data, opts } satisfies ToNatsWorker);
      });
    },
  };

  /** The current thread's id while it runs under SCHED_IDLE or is boosted from it. */
  let idleTid: number | undefined;
  let boosted = false;
  let boostedAt = 0;
  /** A chrt is running: no second decision until it is done. */
  let changing = false;
  const checkBoost = () => {
    const tid = idleTid;
    if (tid === undefined || changing) return;
    const want = shouldBoost(publisher, up, boosted);
    if (want === boosted) return;
    changing = true;
    void setThreadSched(tid, want ? 'batch' : 'idle').then((err) => {
      changing = false;
      if (idleTid !== tid) return; // that thread is gone
      if (err !== undefined) {
        // Raising needs the right leaveIdleDenied() found; lowering is always allowed. Stop trying.
        idleTid = undefined;
        log.warn({ err, tid }, 'could not change the NATS thread’s cpu scheduling; it stays as it is');
        return;
      }
      boosted = want;
      if (want) {
        boostedAt = Date.now();
        metrics?.threadBoosts.inc();
        log.info(
          { tid, queueFill: round2(publisher.queueFill), spooled: publisher.spooled },
          'NATS thread behind: raised to SCHED_BATCH until it catches up',
        );
      } else
        log.info({ tid, boostedMs: Date.now() - boostedAt }, 'NATS thread caught up: back to SCHED_IDLE');
    });
  };
  // Only a thread started under SCHED_IDLE is ever boosted: no timer for the other policies.
  const boostTimer = sched === 'idle' ? setInterval(checkBoost, BOOST_CHECK_MS) : undefined;
  boostTimer?.unref();

  const failPending = (why: string) => {
    for (const p of pending.values()) p.reject(new Error(why));
    pending.clear();
  };

  const start = () => {
    const w = new Worker(new URL('./nats-worker.mjs', import.meta.url), {
      workerData: { config: natsConfigOf(config), sched } satisfies NatsWorkerData,
      name: 'wingman-nats',
    });
    worker = w;
    w.on('message', (m: FromNatsWorker) => {
      switch (m.type) {
        case 'published': {
          const p = pending.get(m.n);
          pending.delete(m.n);
          if (m.error === undefined) p?.resolve();
          else p?.reject(new Error(m.error));
          break;
        }
        case 'link':
          if (closed) break;
          up = m.up;
          if (m.up) deaths = 0;
          publisher.setSink(m.up ? sink : undefined);
          if (m.first) log.info({ nats: config.NATS_URL }, 'event publisher connected to NATS');
          else if (m.up) log.info('NATS reconnected; replaying spooled events');
          else log.warn('NATS disconnected; spooling events');
          break;
        case 'failed':
          log.error({ err: m.error }, 'NATS link failed; events spool until a new thread connects');
          break;
        case 'sched':
          if (m.error !== undefined)
            log.warn(
              { err: m.error },
              `EVENT_THREAD_SCHED=${sched} not applied; the NATS thread runs at normal priority`,
            );
          else {
            log.info({ tid: m.tid, policy: m.policy }, 'NATS thread cpu scheduling');
            if (m.policy === 'idle' && worker === w) idleTid = m.tid;
          }
          break;
      }
    });
    w.on('error', (err) => log.error({ err: err.message }, 'NATS worker thread failed'));
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      idleTid = undefined;
      boosted = false;
      up = false;
      publisher.setSink(undefined);
      failPending('NATS worker thread exited');
      if (closed) return;
      const restartInMs = restartDelayMs(++deaths);
      log.error({ code, restartInMs }, 'NATS worker thread exited; events spool until it is back');
      setTimeout(() => {
        if (!closed) start();
      }, restartInMs).unref();
    });
  };
  start();

  return {
    get thread() {
      return worker;
    },
    get connected() {
      return up;
    },
    async close() {
      closed = true;
      clearInterval(boostTimer);
      up = false;
      publisher.setSink(undefined);
      const w = worker;
      if (!w) return;
      const exited = new Promise((r) => w.once('exit', r));
      w.postMessage({ type: 'close' } satisfies ToNatsWorker);
      const timer = setTimeout(() => void w.terminate(), 1000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The NATS part of the relay's config: plain data, copied to the worker thread. */
function natsConfigOf(config: NatsConfig): NatsConfig {
  return Object.fromEntries(
    Object.keys(natsConfigShape).map((k) => [k, config[k as keyof NatsConfig]]),
  ) as NatsConfig;
}
