import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { tempDir } from './temp-dir.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const TEST_TOKEN = 'test-token-0123456789';

/**
 * A /proc/<pid>/stat (or task stat) line: the command name, and field n as numbered in proc(5)
 * (1 = pid, 2 = name, 3 = state, 14 = utime, 41 = policy). The name may hold spaces and
 * parentheses, so fields are counted from the last ')'.
 */
export function procStat(path: string): { name: string; field: (n: number) => string | undefined } {
  const stat = readFileSync(path, 'utf8');
  const close = stat.lastIndexOf(')');
  const rest = stat.slice(close + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, close), field: (n) => rest[n - 3] };
}

/**
 * `read(tid, dir)` for each thread of a process (`dir` is `/proc/<pid>/task/<tid>`); a thread that
 * ends while it is read is left out.
 */
export function eachThread<T>(pid: number, read: (tid: number, dir: string) => T): T[] {
  const task = `/proc/${pid}/task`;
  return readdirSync(task).flatMap((tid) => {
    try {
      return [read(Number(tid), `${task}/${tid}`)];
    } catch {
      return []; // the thread ended meanwhile
    }
  });
}

/** Linux scheduling policies as /proc/<pid>/task/<tid>/stat shows them (field 41; sched(7)). */
export const SCHED = { OTHER: 0, BATCH: 3, IDLE: 5 } as const;

/** A sample's value in Prometheus text (a metric without labels), or NaN when it is absent. */
export function metricValue(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

/** A child process whose stdout lines are kept and can be waited on. */
export class Proc {
  readonly lines: string[] = [];
  private waiters: { match: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  private readonly rl: ReturnType<typeof createInterface>;

  constructor(readonly child: ChildProcess) {
    this.rl = createInterface({ input: child.stdout! });
    this.rl.on('line', (line) => this.onLine(line));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    // Some programs (nats-server) log to stderr: make those lines waitable too.
    createInterface({ input: child.stderr! }).on('line', (line) => this.onLine(line));
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  }

  private onLine(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(line)) return true;
      w.resolve(line);
      return false;
    });
  }

  /**
   * Stop keeping stdout lines (benchmarks: parsing them would steal CPU from the system under test).
   * The pipe is still read, so the child never queues its output in memory: keep this process's
   * event loop free while the child runs (loadtest/harness.ts runs wrk asynchronously).
   */
  discardOutput(): void {
    this.rl.close();
    this.child.stdout!.resume();
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolve with the first line (already seen or future) matching, or reject after timeoutMs. */
  waitFor(match: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const t = setTimeout(
        () =>
          rej(
            new Error(
              `timed out waiting for output; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(t);
          res(l);
        },
      });
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
  }

  /** Scheduling policy of each of the process's threads (SCHED below), with its id and name (from /proc). */
  threadScheduling(): { tid: number; thread: string; policy: number }[] {
    return eachThread(this.pid, (tid, dir) => {
      const { name, field } = procStat(`${dir}/stat`);
      return { tid, thread: name, policy: Number(field(41)) };
    });
  }

  /** Resident set size in bytes, from /proc. */
  rssBytes(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }
}

/**
 * Run a TypeScript entry point in one node process (not the tsx CLI, which would add a wrapper
 * process). `wrapper` is a command that execs node in its own place (taskset, setpriv, prlimit),
 * so the pid is still node's.
 */
export function spawnTs(
  args: string[],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  wrapper: string[] = [],
): Proc {
  const argv = [...wrapper, process.execPath, ...nodeArgs, '--import', 'tsx', ...args];
  return new Proc(
    spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

export interface RelayProc extends Proc {
  port: number;
  url: string;
}

export async function startRelay(
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  /** A command that execs the relay in its place (spawnTs). */
  wrapper: string[] = [],
): Promise<RelayProc> {
  const p = spawnTs(
    ['relay/src/main.ts'],
    {
      HOST: '127.0.0.1',
      PORT: '0',
      RELAY_TOKEN: TEST_TOKEN,
      RELAY_DOMAIN: 'localhost',
      LOG_LEVEL: 'info',
      DATA_DIR: tempDir('wingman-relay-'),
      // Tunnel-only tests run without NATS; pipeline tests pass NATS_URL.
      EVENTS_ENABLED: env.NATS_URL ? 'true' : 'false',
      ...env,
    },
    nodeArgs,
    wrapper,
  ) as RelayProc;
  const line = await p.waitFor((l) => l.includes('"relay listening"'));
  p.port = (JSON.parse(line) as { port: number }).port;
  p.url = `http://127.0.0.1:${p.port}`;
  return p;
}

export interface AppProc extends Proc {
  port: number;
}

export async function startLocalApp(port = 0): Promise<AppProc> {
  const p = spawnTs(['test/fixtures/local-app.ts'], { PORT: String(port) }) as AppProc;
  const line = await p.waitFor((l) => l.startsWith('{"port"'));
  p.port = (JSON.parse(line) as { port: number }).port;
  return p;
}

export interface SessionInfo {
  sessionId: string;
  urls: { path: string; host: string };
  resumed: boolean;
}

export interface ClientProc extends Proc {
  home: string;
  session: SessionInfo;
}

/** Start `wingman http <port> --json` as a real process and wait for its session. */
export async function startClient(
  relay: { url: string },
  appPort: number,
  opts: { args?: string[]; home?: string; token?: string; waitSession?: boolean } = {},
): Promise<ClientProc> {
  const home = opts.home ?? tempDir('wingman-home-');
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'client/bin/wingman.js'),
      'http',
      String(appPort),
      '--relay',
      relay.url,
      '--token',
      opts.token ?? TEST_TOKEN,
      '--json',
      ...(opts.args ?? []),
    ],
    { cwd: ROOT, env: { ...process.env, WINGMAN_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const p = new Proc(child) as ClientProc;
  p.home = home;
  if (opts.waitSession !== false) {
    const line = await p.waitFor((l) => l.includes('"event":"session"'));
    p.session = JSON.parse(line) as SessionInfo;
  }
  return p;
}
