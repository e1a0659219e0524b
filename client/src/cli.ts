import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { LineWriter } from './line-writer.ts';
import type { RequestLog } from './local-proxy.ts';
import { SessionStore } from './session-store.ts';
import { CLIENT_VERSION, TunnelClient } from './tunnel-client.ts';

const USAGE = `wingman ${CLIENT_VERSION}: share a local development server through a public URL

Usage:
  wingman http <port> [options]

Options:
  --host <name>         local host to forward to (default: localhost)
  --subdomain <id>      ask for this session id (8-32 letters and digits)
  --relay <url>         relay URL (default: $WINGMAN_RELAY or http://127.0.0.1:8080)
  --token <token>       relay token (default: $WINGMAN_TOKEN, else .wingman/dev-token)
  --preserve-host       pass the visitor's Host header instead of the local address
  --json                machine-readable output, one JSON object per line
  -h, --help            show this help
`;

const argsSchema = z.object({
  port: z.coerce.number().int().min(1).max(65535),
  host: z.string().min(1),
  subdomain: z
    .string()
    .regex(/^[a-zA-Z0-9]{8,32}$/, 'must be 8-32 letters and digits')
    .optional(),
  relay: z.string().min(1),
  token: z.string().optional(),
});

/** ws(s)://host/v1/connect from an http(s) or ws(s) relay URL. */
export function tunnelUrl(relay: string): string {
  const u = new URL(relay.includes('://') ? relay : `http://${relay}`);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/connect';
  return u.toString();
}

function findDevToken(): string | undefined {
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  for (const dir of [process.cwd(), repoRoot]) {
    const f = join(dir, '.wingman', 'dev-token');
    if (existsSync(f)) return readFileSync(f, 'utf8').trim();
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        host: { type: 'string', default: 'localhost' },
        subdomain: { type: 'string' },
        relay: { type: 'string', default: process.env.WINGMAN_RELAY ?? 'http://127.0.0.1:8080' },
        token: { type: 'string' },
        'preserve-host': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`wingman: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals[0] !== 'http') {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const args = argsSchema.safeParse({
    port: positionals[1],
    host: values.host,
    subdomain: values.subdomain,
    relay: values.relay,
    token: values.token ?? process.env.WINGMAN_TOKEN ?? findDevToken(),
  });
  if (!args.success) {
    process.stderr.write(`wingman: ${z.prettifyError(args.error)}\n\n${USAGE}`);
    return 2;
  }
  const json = values.json === true;
  const a = args.data;
  const relayUrl = tunnelUrl(a.relay);
  const store = new SessionStore(relayUrl, a.port);
  const saved = a.subdomain ? undefined : store.load();
  const client = new TunnelClient({
    relayUrl,
    resume: saved,
    token: a.token,
    localHost: a.host,
    localPort: a.port,
    subdomain: a.subdomain,
    preserveHost: values['preserve-host'] === true,
  });
  const out = new LineWriter(process.stdout, (count) =>
    json
      ? JSON.stringify({ event: 'requests_not_shown', count })
      : `wingman  ${count} request lines not shown: the output was not being read`,
  );
  client.on('session', (s) => {
    store.save({ sessionId: s.sessionId, resumeToken: s.resumeToken });
    if (json)
      out.line(
        JSON.stringify({
          event: 'session',
          sessionId: s.sessionId,
          urls: s.urls,
          resumed: s.resumed,
          local: `${a.host}:${a.port}`,
        }),
      );
    else if (s.resumed) out.line(`wingman  resumed session ${s.sessionId}`);
    else {
      out.line(`wingman  session ${s.sessionId}  ->  http://${a.host}:${a.port}`);
      out.line(`  ${s.urls.path}`);
      out.line(`  ${s.urls.host}`);
    }
  });
  client.on('request', (r: RequestLog) => {
    if (json)
      out.request(JSON.stringify({ event: 'request', ...r, durationMs: Math.round(r.durationMs * 10) / 10 }));
    else
      out.request(
        `${r.method.padEnd(7)} ${r.path.length > 60 ? `${r.path.slice(0, 57)}...` : r.path.padEnd(60)} ${r.status}  ${r.durationMs.toFixed(1)}ms`,
      );
  });
  client.on('disconnected', (d) => {
    const msg = { event: 'disconnected', code: d.code, reason: d.reason, retryInMs: d.retryInMs };
    if (json) out.line(JSON.stringify(msg));
    else
      out.line(
        `wingman  disconnected (${d.code} ${d.reason || 'no reason'}); reconnecting in ${d.retryInMs}ms`,
      );
  });
  client.on('goaway', (reason) =>
    out.line(json ? JSON.stringify({ event: 'goaway', reason }) : `wingman  relay going away: ${reason}`),
  );

  return new Promise<number>((resolveExit) => {
    client.on('fatal', ({ code, reason }) => {
      store.clear();
      out.flush(true);
      process.stderr.write(`wingman: relay refused the tunnel (${code}): ${reason}\n`);
      resolveExit(1);
    });
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      client.stop().then(() => {
        store.clear();
        out.line(json ? JSON.stringify({ event: 'closed' }) : 'wingman  session closed');
        out.flush(true);
        resolveExit(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    client.start();
  });
}
