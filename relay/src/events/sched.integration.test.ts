import { afterEach, describe, expect, it } from 'vitest';
import { type RelayProc, SCHED, startRelay } from '../../../test/helpers/processes.ts';

// Real relay processes. NATS is pointed at a closed port: the NATS thread sets its scheduling as
// it starts, before it connects, and keeps retrying the connection until the relay stops.
describe('EVENT_THREAD_SCHED: the relay NATS thread’s CPU scheduling', () => {
  const relays: RelayProc[] = [];
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop('SIGKILL')));
  });
  const relay = async (env: Record<string, string>) => {
    const r = await startRelay({ NATS_URL: 'nats://127.0.0.1:1', ...env });
    relays.push(r);
    return r;
  };
  const schedLine = async (r: RelayProc) =>
    JSON.parse(await r.waitFor((l) => l.includes('NATS thread cpu scheduling'))) as {
      tid: number;
      policy: string;
    };

  it('batch by default: that one thread runs under SCHED_BATCH, every other under SCHED_OTHER', async () => {
    const r = await relay({});
    const line = await schedLine(r);
    expect(line.policy).toBe('batch');
    const threads = r.threadScheduling();
    expect(threads.length).toBeGreaterThan(2);
    expect(threads.filter((t) => t.policy !== SCHED.OTHER)).toEqual([
      { tid: line.tid, thread: expect.any(String), policy: SCHED.BATCH },
    ]);
  });

  it('idle (as npm start runs it): that one thread runs under SCHED_IDLE, every other under SCHED_OTHER', async () => {
    const r = await relay({ EVENT_THREAD_SCHED: 'idle' });
    const line = await schedLine(r);
    expect(line.policy).toBe('idle');
    expect(r.threadScheduling().filter((t) => t.policy !== SCHED.OTHER)).toEqual([
      { tid: line.tid, thread: expect.any(String), policy: SCHED.IDLE },
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
});
