import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const savedSchema = z.object({ sessionId: z.string(), resumeToken: z.string() });
export type SavedSession = z.infer<typeof savedSchema>;

/**
 * Remembers the session for one relay and local port, so restarting
 * `wingman http 3000` resumes the same URL within the relay's grace period.
 * Files live in $WINGMAN_HOME (default ~/.wingman) with mode 0600.
 */
export class SessionStore {
  private readonly file: string;

  constructor(
    relayUrl: string,
    localPort: number,
    dir = process.env.WINGMAN_HOME ?? join(homedir(), '.wingman'),
  ) {
    const key = createHash('sha256').update(`${relayUrl}|${localPort}`).digest('hex').slice(0, 16);
    this.file = join(dir, `session-${key}.json`);
  }

  load(): SavedSession | undefined {
    try {
      const r = savedSchema.safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  save(s: SavedSession): void {
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o700 });
      writeFileSync(this.file, JSON.stringify(s), { mode: 0o600 });
    } catch {
      // Resume across restarts is a convenience; a read-only home must not stop the tunnel.
    }
  }

  clear(): void {
    rmSync(this.file, { force: true });
  }
}
