import { describe, expect, it } from 'vitest';
import { loadNativeUws, NativeUwsUnavailableError } from './uws.ts';

describe('loadNativeUws', () => {
  it('loads the native binding for this Node', () => {
    const uws = loadNativeUws();
    expect(typeof uws.App).toBe('function');
    expect(typeof uws.us_listen_socket_close).toBe('function');
  });

  it('refuses, with a clear error, when the native binary cannot load (no JS fallback)', () => {
    expect(() => loadNativeUws('999')).toThrow(NativeUwsUnavailableError);
    expect(() => loadNativeUws('999')).toThrow(/will not start on the slow JavaScript fallback/);
  });
});
