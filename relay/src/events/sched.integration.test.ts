import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, type NatsProc, startNats } from '../../../test/helpers/pipeline.ts';
import { metricValue, type RelayProc, SCHED, startRelay } from '../../../test/helpers/processes.ts';

// Real relay processes. NATS is pointed at a closed port: the NATS thread sets its scheduling as
// it starts, before it connects, and keeps retrying the connection until the relay stops.
describe('EVENT_THREAD_SCHED: the relay NATS thread’s CPU scheduling', () => {
  const relays: RelayProc[] = [];
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop('SIGKILL')));
  });
  const relay = async (env: Record<string, string>, wrapper: string[] = []) => {
    const r = await startRelay({ NATS_URL: 'nats://127.0.0.1:1', ...env }, [], wrapper);
    relays.push(r);
    return r;
  };
  const schedLine = async (r: RelayProc) =>
    JSON.parse(await r.waitFor((l) => l.includes('NATS thread cpu scheduling'))) as {
      tid: number;
      policy: string;
    };

  it('idle by default: that one thread runs under SCHED_IDLE, every other under SCHED_OTHER', async () => {
    const r = await relay({});
    const line = await schedLine(r);
    expect(line.policy).toBe('idle');
    const threads = r.threadScheduling();
    expect(threads.length).toBeGreaterThan(2);
    expect(threads.filter((t) => t.policy !== SCHED.OTHER)).toEqual([
      { tid: line.tid, thread: expect.any(String), policy: SCHED.IDLE },
    ]);
  });

  it('batch: that one thread runs under SCHED_BATCH, every other under SCHED_OTHER', async () => {
    const r = await relay({ EVENT_THREAD_SCHED: 'batch' });
    const line = await schedLine(r);
    expect(line.policy).toBe('batch');
    expect(r.threadScheduling().filter((t) => t.policy !== SCHED.OTHER)).toEqual([
      { tid: line.tid, thread: expect.any(String), policy: SCHED.BATCH },
    ]);
  });

  it('idle where a SCHED_IDLE thread could not be raised again (no CAP_SYS_NICE, RLIMIT_NICE 0): batch, with a warning', async () => {
    // prlimit and setpriv (util-linux) exec the relay in their place with those rights taken away.
    const r = await relay({ EVENT_THREAD_SCHED: 'idle' }, [
      'prlimit',
      '--nice=0:0',
      'setpriv',
      '--bounding-set=-sys_nice',
      '--inh-caps=-sys_nice',
    ]);
    const warning = JSON.parse(await r.waitFor((l) => l.includes('running it as batch')));
    expect(warning).toMatchObject({ level: 40, reason: 'no CAP_SYS_NICE and RLIMIT_NICE is 0 (needs 20)' });
    const line = await schedLine(r);
    expect(line.policy).toBe('batch');
    expect(r.threadScheduling().filter((t) => t.policy !== SCHED.OTHER)).toEqual([
      { tid: line.tid, thread: expect.any(String), policy: SCHED.BATCH },
    ]);
  });

  it('normal: the NATS thread stays under SCHED_OTHER like the rest', async () => {
    const r = await relay({ EVENT_THREAD_SCHED: 'normal' });
    const line = await schedLine(r);
    expect(line.policy).toBe('normal');
    const threads = r.threadScheduling();
    expect(threads.map((t) => t.tid)).toContain(line.tid);
    expect(threads.filter((t) => t.policy !== SCHED.OTHER)).toEqual([]);
  });

  it('idle without chrt on the PATH: a warning naming the cause, and the relay serves on', async () => {
    const r = await relay({ PATH: '/nonexistent', EVENT_THREAD_SCHED: 'idle' });
    const line = JSON.parse(await r.waitFor((l) => l.includes('EVENT_THREAD_SCHED=idle not applied')));
    expect(line).toMatchObject({ level: 40, err: 'chrt not found (util-linux)' });
    expect((await fetch(`${r.url}/health`)).status).toBe(200);
    expect(r.threadScheduling().filter((t) => t.policy !== SCHED.OTHER)).toEqual([]);
  });

  describe('idle, on a CPU kept busy: the thread falls behind, runs under SCHED_BATCH until it catches up, then idle again', () => {
    let nats: NatsProc | undefined;
    let busy: ReturnType<typeof spawn> | undefined;
    afterEach(async () => {
      busy?.kill('SIGKILL');
      await nats?.stop();
    });

    it('boosts, catches up with nothing dropped, and goes back to SCHED_IDLE', async () => {
      nats = await startNats();
      // The relay and a busy loop at normal priority share CPU 0: a SCHED_IDLE thread there gets
      // almost no CPU while the loop runs. 1 MiB of queue: one full envelope waiting is behind.
      const pin = ['taskset', '-c', '0'];
      const r = await startRelay(
        { NATS_URL: nats.url, EVENT_THREAD_SCHED: 'idle', EVENT_BUFFER_MAX_BYTES: String(1024 * 1024) },
        [],
        pin,
      );
      relays.push(r);
      await r.waitFor((l) => l.includes('event publisher connected to NATS'));
      const { tid } = await schedLine(r);
      busy = spawn(pin[0]!, [...pin.slice(1), process.execPath, '-e', 'for(;;){}'], { stdio: 'ignore' });

      // Visitor requests for a session that does not exist: each is a 404 and one request.completed.
      const n = 4000;
      let next = 0;
      const worker = async () => {
        while (next < n) {
          next++;
          const res = await fetch(`${r.url}/session/nosuchsession1/x`);
          await res.arrayBuffer();
          expect(res.status).toBe(404);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));

      const boost = JSON.parse(await r.waitFor((l) => l.includes('raised to SCHED_BATCH'), 30_000));
      expect(boost.tid).toBe(tid);
      const back = JSON.parse(await r.waitFor((l) => l.includes('back to SCHED_IDLE'), 30_000));
      expect(back.tid).toBe(tid);

      const m = await eventually(
        async () => (await fetch(`${r.url}/metrics`)).text(),
        (t) => metricValue(t, 'wingman_relay_events_published_total') >= n,
      );
      expect(metricValue(m, 'wingman_relay_event_thread_boosts_total')).toBeGreaterThanOrEqual(1);
      expect(metricValue(m, 'wingman_relay_events_dropped_total')).toBe(0);
      // Caught up (it may have been raised more than once on the way), the thread ends under
      // SCHED_IDLE while the busy loop still runs: that is the relay's doing, not a quiet CPU.
      await eventually(
        async () => r.threadScheduling().find((t) => t.tid === tid)?.policy,
        (policy) => policy === SCHED.IDLE,
      );
      expect(busy.exitCode).toBeNull();
    }, 90_000);
  });
});
