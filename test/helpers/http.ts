import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/** One HTTP request with node:http (no retries, no redirects followed). */
export function request(
  url: string,
  opts: {
    method?: string;
    headers?: http.OutgoingHttpHeaders | string[];
    body?: Buffer | string;
    agent?: http.Agent;
    timeoutMs?: number;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(opts.timeoutMs ?? 20_000, () => req.destroy(new Error('request timed out')));
    req.end(opts.body);
  });
}

export const json = <T = Record<string, unknown>>(r: Reply): T => JSON.parse(r.body.toString()) as T;

/**
 * `n` GET requests (`url(i)` for the i-th), `concurrency` at a time over keep-alive connections;
 * resolves with how many were answered 200.
 */
export async function requestsOk(
  n: number,
  concurrency: number,
  url: (i: number) => string,
  headers?: http.OutgoingHttpHeaders,
): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let ok = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const r = await request(url(next++), { agent, headers });
        if (r.status === 200) ok++;
      }
    }),
  );
  agent.destroy();
  return ok;
}
