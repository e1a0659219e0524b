import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
let exitHooked = false;

/**
 * A new empty directory under the OS temp dir (`prefix` + random), removed with everything in it
 * when this process exits, or, under vitest, after each test file (test/setup/temp-dirs.ts:
 * vitest ends its workers without an 'exit' event). Tests and benchmarks make many: nats-server
 * stores, chDB data, spools, client homes. Left behind, they filled this machine's disk (64 GiB
 * over a few days of runs) until JetStream refused to create its streams.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Once per process: a vitest worker empties `made` after every file and must not add a listener each time.
  if (!exitHooked) {
    exitHooked = true;
    process.once('exit', removeTempDirs);
  }
  made.push(dir);
  return dir;
}

/** Remove every directory made so far (a directory that cannot be removed is left). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort at exit: a directory that cannot be removed stays, nothing else is affected.
    }
  }
}
