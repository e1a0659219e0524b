import { envBool, envInt, loadConfig, natsConfigShape, SCHED_POLICIES } from '@wingman/shared';
import { z } from 'zod';

/** Relay configuration, read from the environment once at start. Documented in docs/configuration.md. */
export const relayConfigSchema = z
  .object({
    HOST: z.string().default('127.0.0.1'),
    PORT: envInt(8080, 0, 65535),
    /** Public base URL used in session URLs, e.g. https://wingman.example.com. Defaults to http://HOST:PORT. */
    PUBLIC_URL: z.url().optional(),
    /** Domain for host-based URLs: {id}.{RELAY_DOMAIN}. */
    RELAY_DOMAIN: z.string().default('localhost'),
    RELAY_ID: z.string().min(1).max(64).default('relay-1'),
    /** Shared token clients must present. Unset in development: a token is generated and printed. */
    RELAY_TOKEN: z.string().min(8).optional(),
    NODE_ENV: z.string().default('development'),
    /** Where the development token is written for `wingman` to pick up. */
    DATA_DIR: z.string().default('.wingman'),
    MAX_SESSIONS: envInt(10_000, 1),
    MAX_STREAMS_PER_SESSION: envInt(256, 1, 65_536),
    MAX_BODY_BYTES: envInt(100 * 1024 * 1024, 0),
    MAX_HEADER_BYTES: envInt(16 * 1024, 1024, 1024 * 1024),
    /** Total session lifetime (the seed's SESSION_TIMEOUT, in ms). */
    SESSION_TIMEOUT: envInt(60 * 60_000, 1000),
    RESUME_GRACE_MS: envInt(30_000, 0),
    /** How long ended session ids keep answering 410 instead of 404. */
    EXPIRED_MEMORY_MS: envInt(24 * 60 * 60_000, 0),
    LOCAL_TIMEOUT_MS: envInt(30_000, 100),
    DRAIN_TIMEOUT_MS: envInt(30_000, 0),
    /** Flow-control credit per stream and direction: the most bytes in flight, and buffered, per stream. */
    STREAM_WINDOW_BYTES: envInt(256 * 1024, 16 * 1024, 16 * 1024 * 1024),
    MAX_FRAME_PAYLOAD_BYTES: envInt(256 * 1024, 16 * 1024, 16 * 1024 * 1024),
    /** Trust X-Forwarded-For from a fronting proxy (Fly, a load balancer). */
    TRUST_PROXY: envBool(false),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ...natsConfigShape,
    /** Publish session, connection and request events to NATS JetStream. */
    EVENTS_ENABLED: envBool(true),
    /** Disk spool for events while NATS is unreachable; defaults to DATA_DIR/spool. */
    SPOOL_DIR: z.string().optional(),
    SPOOL_MAX_BYTES: envInt(1024 ** 3, 1024 * 1024),
    EVENT_BATCH_MAX: envInt(1000, 1, 10_000),
    EVENT_BATCH_MAX_AGE_MS: envInt(200, 5, 60_000),
    /** Largest envelope; must stay below the NATS server's max_payload (1 MiB by default). */
    EVENT_ENVELOPE_MAX_BYTES: envInt(512 * 1024, 16 * 1024, 8 * 1024 * 1024),
    EVENT_BUFFER_MAX_BYTES: envInt(8 * 1024 * 1024, 64 * 1024),
    PUBLISH_TIMEOUT_MS: envInt(5000, 100),
    /**
     * CPU scheduling of the NATS thread (nats-link.ts), which compresses and publishes envelopes.
     * `idle` (Linux SCHED_IDLE, the default) runs it only on CPU time nothing else wants, so its
     * work does not compete with the tunnel; while it is behind (a host whose CPUs stay busy) it
     * runs under SCHED_BATCH until it has caught up. Raising it back needs CAP_SYS_NICE or
     * RLIMIT_NICE >= 20 (`--ulimit nice=20`); without either the relay runs it as `batch` and says
     * so. `batch` (SCHED_BATCH) gives it a normal share of the CPU, but its wake-ups do not preempt
     * the event loop that serves visitors. `normal` leaves the default policy.
     */
    EVENT_THREAD_SCHED: z.enum([...SCHED_POLICIES, 'normal']).default('idle'),
  })
  .superRefine((c, ctx) => {
    if (c.NODE_ENV === 'production' && !c.RELAY_TOKEN) {
      ctx.addIssue({ code: 'custom', path: ['RELAY_TOKEN'], message: 'required when NODE_ENV=production' });
    }
  });

export type RelayConfig = z.output<typeof relayConfigSchema>;

export function loadRelayConfig(
  env: Record<string, string | undefined> = process.env,
): Readonly<RelayConfig> {
  return loadConfig(relayConfigSchema, env);
}
