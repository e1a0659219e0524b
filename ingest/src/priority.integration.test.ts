import { afterEach, describe, expect, it } from 'vitest';
import { type Proc, spawnTs } from '../../test/helpers/processes.ts';

// Real ingest processes. NATS is pointed at a closed port: these checks happen before ingest
// connects, and it keeps retrying until stopped. (Where the policy is applied, the pipeline test
// checks every thread's policy in /proc.)
describe('INGEST_SCHED', () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  });
  const ingest = (env: Record<string, string>) => {
    const p = spawnTs(['ingest/src/main.ts'], { NATS_URL: 'nats://127.0.0.1:1', HTTP_PORT: '0', ...env });
    procs.push(p);
    return p;
  };

  it('idle without chrt on the PATH: a warning naming the cause, and ingest carries on', async () => {
    const p = ingest({ INGEST_SCHED: 'idle', PATH: '/nonexistent' });
    const line = JSON.parse(await p.waitFor((l) => l.includes('INGEST_SCHED=idle not applied')));
    expect(line).toMatchObject({ level: 40, err: 'chrt not found (util-linux)' });
    expect(p.child.exitCode).toBeNull();
  });

  it('an unknown value is a configuration error, not a start at some other priority', async () => {
    const p = ingest({ INGEST_SCHED: 'low' });
    expect((await p.exited).code).toBe(1);
    expect(p.stderr).toContain(
      'ingest: invalid configuration:\n  INGEST_SCHED: Invalid option: expected one of "normal"|"idle"',
    );
  });
});
