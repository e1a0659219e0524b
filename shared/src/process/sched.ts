import { execFileSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';

/**
 * Linux scheduling policies (sched(7)) that background work can run under:
 * - `batch` (SCHED_BATCH): a normal share of the CPU, but a thread that wakes up does not preempt
 *   the one running (the kernel treats it as CPU-bound), so it does not cut into latency-bound
 *   work such as the relay's event loop.
 * - `idle` (SCHED_IDLE): only CPU time nothing else wants; below even nice 19.
 */
export type SchedPolicy = 'batch' | 'idle';

/**
 * Put the calling thread (`thread`), or every thread of this process that exists now (`process`),
 * under `policy`. Threads started later inherit the policy of the thread that creates them.
 *
 * Node has no binding for sched_setscheduler(2), so this runs util-linux's `chrt`: on our own pid
 * with --all-tasks, or on the calling thread's own id, which `/proc/thread-self` names (a
 * synchronous fs call runs on the calling thread, a worker thread included). Returns the thread
 * ids set, or why not.
 */
export function setSchedPolicy(
  policy: SchedPolicy,
  scope: 'thread' | 'process',
): { threads: number[] } | { error: string } {
  if (process.platform !== 'linux') return { error: `SCHED_${policy.toUpperCase()} is Linux-only` };
  try {
    const ids = scope === 'process' ? readdirSync('/proc/self/task').map(Number) : [threadId()];
    // chrt reads --all-tasks only before --pid: after it, only the pid's main thread was set.
    const args =
      scope === 'process'
        ? ['--all-tasks', `--${policy}`, '--pid', '0', String(process.pid)]
        : [`--${policy}`, '--pid', '0', String(ids[0])];
    execFileSync('chrt', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 5000,
    });
    return { threads: ids };
  } catch (err) {
    const e = err as Error & { stderr?: Buffer; code?: string };
    return {
      error: e.code === 'ENOENT' ? 'chrt not found (util-linux)' : e.stderr?.toString().trim() || e.message,
    };
  }
}

/** The calling thread's Linux thread id (its `/proc/self/task` entry), from `/proc/thread-self`. */
export function threadId(): number {
  return Number(readlinkSync('/proc/thread-self').split('/').pop());
}
