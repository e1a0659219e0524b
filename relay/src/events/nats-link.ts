import { Worker } from 'node:worker_threads';
import { type Logger, type NatsConfig, natsConfigShape, type SchedPolicy } from '@wingman/shared';
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
  sched: NatsThreadSched,
): NatsLink {
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
          else log.info({ tid: m.tid, policy: m.policy }, 'NATS thread cpu scheduling');
          break;
      }
    });
    w.on('error', (err) => log.error({ err: err.message }, 'NATS worker thread failed'));
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
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

/** The NATS part of the relay's config: plain data, copied to the worker thread. */
function natsConfigOf(config: NatsConfig): NatsConfig {
  return Object.fromEntries(
    Object.keys(natsConfigShape).map((k) => [k, config[k as keyof NatsConfig]]),
  ) as NatsConfig;
}
