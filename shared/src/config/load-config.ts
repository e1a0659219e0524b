import { z } from 'zod';
import { WingmanError } from '../errors/catalogue.ts';

/** Thrown when the environment fails a service's config schema; lists every bad key. */
export class ConfigError extends WingmanError {
  constructor(readonly issues: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  ${issues.join('\n  ')}`);
  }
}

/**
 * Read a service's config from an env-like record once, report every bad key
 * at once, and freeze the result.
 */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined>,
): Readonly<z.output<S>> {
  const r = schema.safeParse(env);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  }
  return Object.freeze(r.data);
}

/** Env helpers: integers and booleans arrive as strings. */
export const envInt = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);
export const envBool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');
