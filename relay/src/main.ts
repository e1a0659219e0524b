import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, createLogger } from '@wingman/shared';
import { loadRelayConfig, type RelayConfig } from './config.ts';
import { createRelay } from './server.ts';

/** The development token is written here so `wingman` run from the repository picks it up. */
export const DEV_TOKEN_FILE = 'dev-token';

function resolveToken(config: Readonly<RelayConfig>): { token: string; generated: boolean } {
  if (config.RELAY_TOKEN) return { token: config.RELAY_TOKEN, generated: false };
  const token = `dev_${randomBytes(18).toString('base64url')}`;
  mkdirSync(config.DATA_DIR, { recursive: true });
  writeFileSync(join(config.DATA_DIR, DEV_TOKEN_FILE), `${token}\n`, { mode: 0o600 });
  return { token, generated: true };
}

async function main(): Promise<void> {
  let config: Readonly<RelayConfig>;
  try {
    config = loadRelayConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`relay: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
  const log = createLogger('relay', config.LOG_LEVEL);
  const { token, generated } = resolveToken(config);
  const relay = createRelay(config, token, log);
  const port = await relay.listen();
  log.info({ port, publicOrigin: relay.ctx.publicOrigin, relayId: config.RELAY_ID }, 'relay listening');
  if (generated) {
    log.warn(
      { tokenFile: join(config.DATA_DIR, DEV_TOKEN_FILE) },
      `development mode: RELAY_TOKEN not set; generated token ${token} (set RELAY_TOKEN in production)`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    relay.shutdown().then(
      () => {
        process.exitCode = 0;
        // uWS closes its sockets asynchronously; don't let a straggler hold the process.
        setTimeout(() => process.exit(), 2000).unref();
      },
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
