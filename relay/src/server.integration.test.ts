import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { json, request } from '../../test/helpers/http.ts';
import { freePort } from '../../test/helpers/pipeline.ts';
import { type Proc, startClient, startLocalApp, startRelay } from '../../test/helpers/processes.ts';

const errorCode = (body: Buffer) => (JSON.parse(body.toString()) as { error: { code: string } }).error.code;

/** Each test starts its own relay, app and client: these tests kill and restart them. */
describe('session lifetime, failure answers and shutdown', () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  });
  async function stack(env: Record<string, string> = {}) {
    const [relay, app] = await Promise.all([startRelay(env), startLocalApp()]);
    procs.push(relay, app);
    const client = await startClient(relay, app.port);
    procs.push(client);
    return { relay, app, client, base: client.session.urls.path };
  }

  it('answers 400 for a malformed id and 404 for an unknown session', async () => {
    const { relay } = await stack();
    const bad = await request(`${relay.url}/session/bad-id!/x`);
    expect(bad.status).toBe(400);
    expect(errorCode(bad.body)).toBe('BAD_SESSION_ID');
    const badHost = await request(`${relay.url}/`, { headers: { host: `no_${'x'.repeat(3)}.localhost` } });
    expect(badHost.status).toBe(400);
    const unknown = await request(`${relay.url}/session/abcdefgh1234/x`);
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown.body)).toBe('SESSION_NOT_FOUND');
  });

  it('killing the client gives a quick 502, in-flight streams fail fast, and a restarted client resumes the same URL', async () => {
    const { relay, app, client, base } = await stack();
    const inflight = request(`${base}hang`);
    await client.waitFor(() => true);
    await new Promise((r) => setTimeout(r, 100));
    await client.stop('SIGKILL');
    const failed = await inflight;
    expect(failed.status).toBe(502);
    expect(errorCode(failed.body)).toBe('CLIENT_GONE');
    const gone = await request(`${base}echo`);
    expect(gone.status).toBe(502);
    expect(errorCode(gone.body)).toBe('CLIENT_GONE');
    // Same WINGMAN_HOME: the new process finds the saved session and resumes it.
    const again = await startClient(relay, app.port, { home: client.home });
    procs.push(again);
    expect(again.session.sessionId).toBe(client.session.sessionId);
    expect(again.session.resumed).toBe(true);
    expect((await request(`${base}echo`)).status).toBe(200);
  });

  it('Ctrl-C closes the session cleanly and its URL then answers 410', async () => {
    const { client, base } = await stack();
    await client.stop('SIGINT');
    expect((await client.exited).code).toBe(0);
    const r = await request(`${base}echo`);
    expect(r.status).toBe(410);
    expect(errorCode(r.body)).toBe('SESSION_EXPIRED');
  });

  it('SESSION_TIMEOUT ends a session (410), and the grace period ends a dropped one (410)', async () => {
    const { relay, app, client, base } = await stack({ SESSION_TIMEOUT: '1500', RESUME_GRACE_MS: '300' });
    expect((await request(`${base}echo`)).status).toBe(200);
    // The client is told, and exits rather than quietly starting a new session.
    expect((await client.exited).code).toBe(1);
    expect(client.stderr).toContain('session expired');
    const r = await request(`${base}echo`);
    expect(r.status).toBe(410);
    // A dropped client whose grace period passes: 502 during grace, 410 after.
    const c2 = await startClient(relay, app.port);
    procs.push(c2);
    await c2.stop('SIGKILL');
    expect((await request(`${c2.session.urls.path}x`)).status).toBe(502);
    await new Promise((r) => setTimeout(r, 600));
    expect((await request(`${c2.session.urls.path}x`)).status).toBe(410);
  });

  it('answers 504 when the local app does not answer in time', async () => {
    const { base } = await stack({ LOCAL_TIMEOUT_MS: '400' });
    const r = await request(`${base}hang`);
    expect(r.status).toBe(504);
    expect(errorCode(r.body)).toBe('LOCAL_TIMEOUT');
    expect((await request(`${base}echo`)).status).toBe(200);
  });

  it('enforces body, header and stream limits with 413, 431 and 503', async () => {
    const { relay, base } = await stack({
      MAX_BODY_BYTES: '1000',
      MAX_HEADER_BYTES: '2048',
      MAX_STREAMS_PER_SESSION: '2',
    });
    const big = await request(`${base}echo`, { method: 'POST', body: Buffer.alloc(1001) });
    expect(big.status).toBe(413);
    // Chunked bodies are counted as they stream.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        `${base}echo`,
        { method: 'POST', headers: { 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(Buffer.alloc(800));
      req.end(Buffer.alloc(800));
    });
    expect(chunked).toBe(413);
    const headers = await request(`${base}echo`, { headers: { 'x-big': 'y'.repeat(3000) } });
    expect(headers.status).toBe(431);
    const h1 = request(`${base}hang`).catch(() => undefined);
    const h2 = request(`${base}hang`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const third = await request(`${base}echo`);
    expect(third.status).toBe(503);
    expect(errorCode(third.body)).toBe('STREAM_LIMIT');
    const metrics = (await request(`${relay.url}/metrics`)).body.toString();
    expect(metrics).toMatch(/wingman_relay_errors_total\{code="STREAM_LIMIT"\} 1/);
    expect(metrics).toMatch(/wingman_relay_errors_total\{code="BODY_TOO_LARGE"\} 2/);
    void h1;
    void h2;
  });

  it('SIGTERM drains in-flight requests, sends goaway, answers 503 meanwhile, and exits 0', async () => {
    const { relay, client, base } = await stack({ DRAIN_TIMEOUT_MS: '10000' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // Open a keep-alive connection now, so a request can arrive after the listen socket closes.
    expect((await request(`${base}echo`, { agent })).status).toBe(200);
    const slow = request(`${base}slow?ms=1500`);
    await new Promise((r) => setTimeout(r, 200));
    relay.child.kill('SIGTERM');
    await client.waitFor((l) => l.includes('"event":"goaway"'));
    const during = await request(`${base}echo`, { agent });
    expect(during.status).toBe(503);
    expect(errorCode(during.body)).toBe('DRAINING');
    const done = await slow;
    expect(done.status).toBe(200);
    expect(json<{ url: string }>(done).url).toBe('/slow?ms=1500');
    expect(await relay.exited).toEqual({ code: 0, signal: null });
    agent.destroy();
  });

  it('after a relay restart the client reconnects with backoff and keeps its URL', async () => {
    // A port outside the ephemeral range, so no outgoing connection takes it while the relay is down.
    const port = await freePort();
    const { relay, app, client } = await stack({ PORT: String(port) });
    const id = client.session.sessionId;
    await relay.stop('SIGTERM');
    await client.waitFor((l) => l.includes('"event":"disconnected"'));
    const relay2 = await startRelay({ PORT: String(port) });
    procs.push(relay2);
    // Resume fails on the new relay (it never saw the session); the client asks for the same id.
    const sessionLines = () => client.lines.filter((l) => l.includes('"event":"session"')).length;
    for (let i = 0; i < 200 && sessionLines() < 2; i++) await new Promise((r) => setTimeout(r, 100));
    expect(sessionLines()).toBe(2);
    expect((await request(`${relay2.url}/session/${id}/echo`)).status).toBe(200);
    void app;
  });
});
