import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Linux scheduling policies (sched(7)) that background work can run under:
 * - `batch` (SCHED_BATCH): a normal share of the CPU, but a thread that wakes up does not preempt
 *   the one running (the kernel treats it as CPU-bound), so it does not cut into latency-bound
 *   work such as the relay's event loop.
 * - `idle` (SCHED_IDLE): only CPU time nothing else wants; below even nice 19.
 */
export const SCHED_POLICIES = ['batch', 'idle'] as const;
export type SchedPolicy = (typeof SCHED_POLICIES)[number];

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
    const args = scope === 'process' ? chrtArgs(policy, process.pid, true) : chrtArgs(policy, ids[0]!);
    execFileSync('chrt', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 5000,
    });
    return { threads: ids };
  } catch (err) {
    return { error: chrtError(err as Error, (err as { stderr?: Buffer }).stderr?.toString()) };
  }
}

/** chrt's arguments that put thread `id` (with `allTasks`, every thread of process `id`) under `policy`. */
function chrtArgs(policy: SchedPolicy | 'normal', id: number, allTasks = false): string[] {
  const flag = policy === 'normal' ? '--other' : `--${policy}`;
  // chrt reads --all-tasks only before --pid: after it, only the pid's main thread was set.
  return [...(allTasks ? ['--all-tasks'] : []), flag, '--pid', '0', String(id)];
}

/** Why chrt failed: not installed, or what it said (say, "Operation not permitted"). */
function chrtError(err: Error, stderr = ''): string {
  return (err as NodeJS.ErrnoException).code === 'ENOENT'
    ? 'chrt not found (util-linux)'
    : stderr.trim() || err.message;
}

/** The calling thread's Linux thread id (its `/proc/self/task` entry), from `/proc/thread-self`. */
export function threadId(): number {
  return Number(readlinkSync('/proc/thread-self').split('/').pop());
}

/**
 * Put the thread `tid` of this process under `policy` (`normal`: SCHED_OTHER), without blocking
 * the calling thread: chrt runs as a child process. Resolves with why not, or undefined.
 */
export function setThreadSched(tid: number, policy: SchedPolicy | 'normal'): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('chrt', chrtArgs(policy, tid), { timeout: 5000 }, (err, _out, stderr) =>
      resolve(err ? chrtError(err, stderr) : undefined),
    );
  });
}

/** Linux capability number of CAP_SYS_NICE (capabilities(7)). */
const CAP_SYS_NICE = 23;

/**
 * Whether a thread of this process that is under SCHED_IDLE may be put back under SCHED_BATCH or
 * SCHED_OTHER. Going down to SCHED_IDLE is always allowed; coming back up needs CAP_SYS_NICE or
 * an RLIMIT_NICE of at least 20 (sched(7): "Treat SCHED_IDLE as nice 20"). A container whose
 * process runs as a user other than root has neither unless it is given `--ulimit nice=20`.
 * Returns why not, or undefined when it may.
 */
export function leaveIdleDenied(
  status = readProc('/proc/self/status'),
  limits = readProc('/proc/self/limits'),
): string | undefined {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (capEff !== undefined && (BigInt(`0x${capEff}`) >> BigInt(CAP_SYS_NICE)) & 1n) return undefined;
  const soft = /^Max nice priority\s+(\S+)/m.exec(limits)?.[1];
  if (soft === 'unlimited' || Number(soft) >= 20) return undefined;
  return `no CAP_SYS_NICE and RLIMIT_NICE is ${soft ?? 'unknown'} (needs 20)`;
}

function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
