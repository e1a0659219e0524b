import { describe, expect, it } from 'vitest';
import { startIngest, startNats } from '../../test/helpers/pipeline.ts';

describe('ingest shutdown', () => {
  it('ends cleanly when nats-server stops at the same moment (one Ctrl-C signals all of npm start)', async () => {
    // Before the fix, 6 of 8 such stops ended in an unhandled "connection disconnected" (exit 1),
    // and a drain failure caught without closing left the process reconnecting for ever.
    for (let i = 0; i < 4; i++) {
      const nats = await startNats();
      const ingest = await startIngest(nats.url, { INGEST_SCHED: 'idle' });
      try {
        // At different points of ingest's 1 s pull.
        await new Promise((r) => setTimeout(r, 1100 + i * 150));
        nats.child.kill('SIGTERM');
        if (i % 2) await new Promise((r) => setTimeout(r, 5));
        ingest.child.kill('SIGTERM');
        const exit = await ingest.exited;
        expect({
          exit,
          stopped: ingest.lines.some((l) => l.includes('"ingest stopped"')),
          stderr: ingest.stderr,
        }).toEqual({ exit: { code: 0, signal: null }, stopped: true, stderr: '' });
      } finally {
        await ingest.stop('SIGKILL');
        await nats.stop();
      }
    }
  }, 120_000);
});
