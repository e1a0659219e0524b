import { ConfigError } from '@wingman/shared';
import { describe, expect, it } from 'vitest';
import { loadRelayConfig } from './config.ts';

describe('relay config', () => {
  it('has sane defaults and is frozen', () => {
    const c = loadRelayConfig({});
    expect(c.PORT).toBe(8080);
    expect(c.MAX_SESSIONS).toBe(10_000);
    expect(c.SESSION_TIMEOUT).toBe(60 * 60_000);
    expect(c.EVENT_ENCODING).toBe('br');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reports every bad key at once', () => {
    try {
      loadRelayConfig({ PORT: 'eighty', MAX_SESSIONS: '0', TRUST_PROXY: 'maybe', EVENT_ENCODING: 'gzip' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const issues = (err as ConfigError).issues.join('\n');
      expect(issues).toContain('PORT');
      expect(issues).toContain('MAX_SESSIONS');
      expect(issues).toContain('TRUST_PROXY');
      expect(issues).toContain('EVENT_ENCODING');
    }
  });

  it('requires RELAY_TOKEN in production', () => {
    expect(() => loadRelayConfig({ NODE_ENV: 'production' })).toThrow(/RELAY_TOKEN: required/);
    expect(loadRelayConfig({ NODE_ENV: 'production', RELAY_TOKEN: 'a-long-token' }).RELAY_TOKEN).toBe(
      'a-long-token',
    );
  });
});
