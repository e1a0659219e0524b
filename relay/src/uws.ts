import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { WingmanError } from '@wingman/shared';

type Uws = typeof import('uWebSockets.js');

/** The relay refuses to run on the package's slow `ws`-based fallback. */
export class NativeUwsUnavailableError extends WingmanError {
  constructor(binary: string, cause: unknown) {
    super(
      'UWS_NATIVE_UNAVAILABLE',
      `uWebSockets.js native binary ${binary} did not load (${(cause as Error)?.message ?? cause}). ` +
        'The relay will not start on the slow JavaScript fallback. Run it on Node 20 (linux x64/arm64, glibc >= 2.27).',
      { cause },
    );
  }
}

const require = createRequire(import.meta.url);

/**
 * Load the uWS native binding directly, bypassing the package's entry point,
 * which silently falls back to a JavaScript implementation when the binary
 * fails to load.
 */
export function loadNativeUws(abi: string = process.versions.modules): Uws {
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${abi}.node`);
  try {
    return require(binary) as Uws;
  } catch (err) {
    throw new NativeUwsUnavailableError(binary, err);
  }
}
