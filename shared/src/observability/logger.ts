import { type Logger, pino } from 'pino';

export type { Logger };

/** One structured JSON logger per process; `service` tags every line. */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: service, level, base: { service } });
}
