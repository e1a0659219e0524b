import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

/**
 * Put every thread of this process under Linux's SCHED_IDLE scheduling policy, so that it runs
 * only on CPU time nothing else on the host wants. Ingest is batch work with a lag budget of
 * seconds and JetStream holding its backlog; on a host it shares with the relay (`npm start`,
 * docker-compose), the relay's request path should not wait behind it. SCHED_IDLE is below even
 * nice 19 (sched(7)), and the kernel preempts such a thread for any normal one that wakes up;
 * nice values 10 and 19 measured no gain here, SCHED_IDLE did (docs/performance.md).
 *
 * Node has no binding for sched_setscheduler(2), so this runs util-linux's `chrt` on our own pid
 * for every thread that exists now; threads started later (chDB's pools, libuv's workers) inherit
 * the policy from the thread that creates them. Returns how many threads were set, or why not.
 */
export function scheduleWhenIdle(): { threads: number } | { error: string } {
  if (process.platform !== 'linux') return { error: 'SCHED_IDLE is Linux-only' };
  try {
    execFileSync('chrt', ['--all-tasks', '--idle', '--pid', '0', String(process.pid)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 5000,
    });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer; code?: string };
    return {
      error: e.code === 'ENOENT' ? 'chrt not found (util-linux)' : e.stderr?.toString().trim() || e.message,
    };
  }
  return { threads: readdirSync('/proc/self/task').length };
}
