import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Lower the CPU priority (raise the nice value) of every thread of this process. Ingest is batch
 * work with a lag budget of seconds; on a host it shares with the relay, the kernel should run the
 * relay's request path first. Linux keeps a nice value per thread, and a new thread inherits its
 * creator's, so setting every thread that exists now (V8's, libuv's, chDB's) covers the ones that
 * come later too (except one that sets its own: ClickHouse's MemoryWorker asks for -20, and gets
 * it when running as root; it uses ~1-2% of ingest's CPU). Returns how many threads were set.
 */
export function lowerPriority(nice: number): number {
  let tids: number[];
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    tids = [0]; // no /proc: the calling thread (on macOS and Windows, the whole process)
  }
  let set = 0;
  for (const tid of tids) {
    try {
      setPriority(tid, nice);
      set++;
    } catch {
      // the thread ended between listing and setting, or raising its priority back is not allowed
    }
  }
  return set;
}
