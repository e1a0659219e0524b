/**
 * Shared pieces of the benchmark scripts: child processes, wrk runs and its
 * output parsing. Every target is on loopback; every run is bounded in time.
 */
import { execFile, execFileSync, execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs, promisify } from 'node:util';
import { type IngestConfig, ingestConfigSchema } from '../ingest/src/config.ts';
import { eachThread, procStat } from '../test/helpers/processes.ts';

export {
  type AppProc,
  metricValue,
  type RelayProc,
  startClient,
  startLocalApp,
  startRelay,
} from '../test/helpers/processes.ts';

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  mibPerS: number;
  errors: number;
  requests: number;
}

/** Install wrk from Debian's packages if it is missing. */
export function ensureWrk(): void {
  execSync('node scripts/setup.mjs --skip-npm --system=wrk', { stdio: 'inherit' });
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const UNIT_BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`cannot parse wrk latency "${text}"`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Parse `wrk --latency` output. Exported for its unit test. */
export function parseWrk(out: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const transfer = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1];
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(rps) || !transfer || !p50 || !p99) throw new Error(`cannot parse wrk output:\n${out}`);
  const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    rps,
    p50Ms: ms(p50),
    p99Ms: ms(p99),
    mibPerS: (Number(transfer[1]) * UNIT_BYTES[transfer[2]!]!) / 1024 ** 2,
    errors: socketErrors + non2xx,
    requests,
  };
}

const execFileAsync = promisify(execFile);

/**
 * One wrk run against a loopback URL. Asynchronous on purpose: while wrk runs, this process must
 * keep reading its children's output. With a blocking run, the `wingman` client's request lines
 * piled up unread for the whole run; its stdout queue grew its RSS from ~140 to 250-320 MB
 * within 20-40 s and its CPU per request up to 1.7 times (docs/performance.md, eighteenth session).
 */
export async function wrk(
  url: string,
  connections: number,
  seconds: number,
  headers: string[] = [],
): Promise<WrkResult> {
  if (!/^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)[:/]/.test(url))
    throw new Error(`benchmarks only target loopback, not ${url}`);
  const args = ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--latency', '--timeout', '5s'];
  for (const h of headers) args.push('-H', h);
  const { stdout } = await execFileAsync('wrk', [...args, url], { encoding: 'utf8' });
  return parseWrk(stdout);
}

export function benchArgs<
  T extends Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>,
>(options: T) {
  return parseArgs({
    args: process.argv.slice(2),
    options: { smoke: { type: 'boolean', default: false }, ...options },
  }).values;
}

/**
 * How a benchmark runs ingest: as `npm start` does next to the relay (idle) unless told otherwise;
 * checked against ingest's own config schema, so a typo fails here rather than in a child process.
 */
export function ingestSchedArg(value: string | undefined): IngestConfig['INGEST_SCHED'] {
  const r = ingestConfigSchema.shape.INGEST_SCHED.safeParse(value ?? 'idle');
  if (!r.success)
    throw new Error(`ingest scheduling ${JSON.stringify(value)}: ${r.error.issues[0]?.message}`);
  return r.data;
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Two-sided 95% quantiles of Student's t, by degrees of freedom (1–30). */
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/**
 * A 95% confidence interval for the mean of independent samples (Student's t), or undefined for
 * fewer than two. Beyond 30 degrees of freedom it uses t = 2.0, a little wider than exact.
 */
export function meanCi95(samples: readonly number[]): [number, number] | undefined {
  const n = samples.length;
  if (n < 2) return undefined;
  const mean = samples.reduce((a, b) => a + b, 0) / n;
  const variance = samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  const half = (T95[n - 2] ?? 2.0) * Math.sqrt(variance / n);
  return [mean - half, mean + half];
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU time (user + system) a process has used, in ms, from /proc; 0 once it is gone. */
export function cpuMs(pid: number | 'self-children'): number {
  try {
    const { field } = procStat(`/proc/${pid === 'self-children' ? 'self' : pid}/stat`);
    const [u, s] = pid === 'self-children' ? [field(16), field(17)] : [field(14), field(15)];
    return (Number(u) + Number(s)) * TICK_MS;
  } catch {
    return 0;
  }
}

/**
 * CPU used by named processes (and by finished child processes such as wrk) while a run goes
 * on, summed over every run measured with `around`.
 */
export class CpuMeter {
  private readonly used: Record<string, number> = {};
  private pids: Record<string, number> = {};

  /** Meter these processes from now on (new ones under the same names add to the same sums). */
  watch(pids: Record<string, number>): void {
    this.pids = pids;
  }

  async around<T>(run: () => Promise<T>): Promise<T> {
    const before = this.sample();
    const result = await run();
    const after = this.sample();
    for (const k of Object.keys(after)) this.used[k] = (this.used[k] ?? 0) + after[k]! - before[k]!;
    return result;
  }

  /** ms of CPU per 1000 requests, per process, and their total. */
  perThousand(requests: number): Record<string, number> {
    const out: Record<string, number> = {};
    let total = 0;
    for (const [k, v] of Object.entries(this.used)) {
      out[k] = round((v / requests) * 1000, 1);
      total += v;
    }
    out.total = round((total / requests) * 1000, 1);
    return out;
  }

  private sample(): Record<string, number> {
    const s: Record<string, number> = { wrk: cpuMs('self-children') };
    for (const [k, pid] of Object.entries(this.pids)) s[k] = cpuMs(pid);
    return s;
  }
}

/** A Linux CPU list (`0-3,6`, as in Cpus_allowed_list and taskset -c) as sorted CPU numbers. */
export function parseCpuList(text: string): number[] {
  const cpus = new Set<number>();
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a CPU list: ${JSON.stringify(text)}`);
    for (let c = Number(m[1]); c <= Number(m[2] ?? m[1]); c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/**
 * For `bench:tunnel --pipeline-cpu N`: the event pipeline (nats-server, ingest) on CPU N alone and
 * the tunnel (this process and what it starts: the local app, relays, clients, wrk) on the other
 * CPUs this process may use, so the two no longer share cores, as when the pipeline runs apart.
 */
export function splitCpus(arg: string, allowed: readonly number[]): { pipeline: number; tunnel: number[] } {
  const pipeline = Number(arg);
  if (!/^\d+$/.test(arg) || !allowed.includes(pipeline))
    throw new Error(
      `--pipeline-cpu must be one of the CPUs this process may use (${allowed.join(', ')}), not ${JSON.stringify(arg)}`,
    );
  const tunnel = allowed.filter((c) => c !== pipeline);
  if (tunnel.length === 0)
    throw new Error('--pipeline-cpu needs two CPUs or more: one for the pipeline, the others for the tunnel');
  return { pipeline, tunnel };
}

/** The CPUs a process or thread may run on: `dir` is its /proc directory (`/proc/self`, `/proc/<pid>/task/<tid>`). */
export function allowedCpus(dir = '/proc/self'): number[] {
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`${dir}/status`, 'utf8'));
  if (!m) throw new Error(`no Cpus_allowed_list in ${dir}/status`);
  return parseCpuList(m[1]!);
}

/** Bind every thread of a running process to `cpus` (util-linux taskset); threads it starts later inherit it. */
export function pinProcess(pid: number, cpus: readonly number[]): void {
  execFileSync('taskset', ['-a', '-c', '-p', cpus.join(','), String(pid)], { stdio: 'ignore' });
}

/** Throw unless every thread of the process may run on exactly `cpus`: a pin that did not take must not go unnoticed. */
export function expectPinned(name: string, pid: number, cpus: readonly number[]): void {
  const want = cpus.join(',');
  for (const { tid, got } of eachThread(pid, (tid, dir) => ({ tid, got: allowedCpus(dir).join(',') })))
    if (got !== want)
      throw new Error(`${name} (pid ${pid}) thread ${tid} may run on CPUs ${got}, not only ${want}`);
}
