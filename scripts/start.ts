/**
 * `npm start`: the main job on one machine. Starts the relay and keeps it
 * running; Ctrl-C (SIGINT) or SIGTERM shuts it down gracefully.
 * Configuration comes from the environment (docs/configuration.md).
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Service {
  name: string;
  args: string[];
}

const services: Service[] = [{ name: 'relay', args: ['--import', 'tsx', 'relay/src/main.ts'] }];

const children = services.map((s) => {
  const child = spawn(process.execPath, s.args, { cwd: root, stdio: 'inherit', env: process.env });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`start: ${s.name} exited (${code ?? signal}); stopping the rest\n`);
      stop('SIGTERM');
      process.exitCode = code ?? 1;
    }
  });
  return child;
});

let stopping = false;
function stop(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill(signal);
}
process.on('SIGINT', () => stop('SIGTERM'));
process.on('SIGTERM', () => stop('SIGTERM'));
process.stderr.write(
  'start: relay on http://127.0.0.1:8080 (PORT to change). Share a local port with: npx wingman http 3000\n',
);
