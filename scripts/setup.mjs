#!/usr/bin/env node
// One-time and idempotent set-up, run before `npm start`, `npm test` and the benchmarks:
//   1. install npm dependencies when node_modules is missing or older than package-lock.json;
//   2. install the Debian packages the project runs (nats-server; wrk for benchmarks) when missing.
// Node builtins only: this runs before any dependency exists.
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const systemArg = args.find((a) => a.startsWith('--system='));
/** Debian package -> command it provides. */
const SYSTEM = { 'nats-server': 'nats-server', wrk: 'wrk', prometheus: 'promtool' };
const wanted = systemArg ? systemArg.slice('--system='.length).split(',').filter(Boolean) : ['nats-server'];

function log(msg) {
  process.stderr.write(`setup: ${msg}\n`);
}

function npmDepsStale() {
  const stamp = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(stamp)) return true;
  return statSync(join(root, 'package-lock.json')).mtimeMs > statSync(stamp).mtimeMs;
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

if (!args.includes('--skip-npm') && npmDepsStale()) {
  log('installing npm dependencies (npm ci)');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
}

const missing = wanted.filter((pkg) => !has(SYSTEM[pkg] ?? pkg));
if (missing.length > 0) {
  const asRoot = process.getuid?.() === 0;
  const sudo = asRoot ? '' : 'sudo ';
  if (!asRoot && !has('sudo')) {
    log(
      `missing Debian packages: ${missing.join(' ')}. Install them with: apt-get install -y ${missing.join(' ')}`,
    );
    process.exit(1);
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  execSync(
    `${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`,
    {
      stdio: 'inherit',
    },
  );
}
