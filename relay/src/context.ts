import type { HttpResponse } from 'uWebSockets.js';
import type { Logger, VisitorErrorCode } from '@wingman/shared';
import { STATUS_TEXT, VisitorErrors, visitorErrorBody } from '@wingman/shared';
import type { RelayConfig } from './config.ts';
import type { RelayMetricsSet } from './observability/metrics.ts';
import type { Session, SessionRegistry } from './tunnel/session-registry.ts';

/** What every relay capability shares. Built once in server.ts and passed in explicitly. */
export interface RelayContext {
  readonly config: Readonly<RelayConfig>;
  readonly log: Logger;
  readonly metrics: RelayMetricsSet;
  readonly registry: SessionRegistry;
  /** The shared client token in force (from config, or generated in development). */
  readonly token: string;
  /** Origin visitors use, e.g. https://relay.example.com; no trailing slash. */
  readonly publicOrigin: string;
  draining: boolean;
  /** Ends a session for good: fails its streams, forgets it, closes its tunnel. */
  endSession(session: Session, reason: 'client_closed' | 'expired' | 'grace_elapsed' | 'shutdown'): void;
}

export const statusLine = (status: number, text?: string): string =>
  `${status} ${text || STATUS_TEXT[status] || 'Status'}`;

/**
 * Answer a visitor with a catalogued error: small JSON body, no-store.
 * Call only while `res` is valid (not aborted, not ended).
 */
export function answerError(
  ctx: RelayContext,
  res: HttpResponse,
  code: VisitorErrorCode,
  startedAt?: number,
): void {
  const { status } = VisitorErrors[code];
  res.cork(() => {
    res
      .writeStatus(statusLine(status))
      .writeHeader('content-type', 'application/json')
      .writeHeader('cache-control', 'no-store');
    if (status === 503) res.writeHeader('retry-after', '5');
    res.end(visitorErrorBody(code));
  });
  ctx.metrics.errors.inc({ code });
  ctx.metrics.requests.inc({ status_class: status >= 500 ? '5xx' : '4xx' });
  if (startedAt !== undefined) ctx.metrics.requestDuration.observe((performance.now() - startedAt) / 1000);
}
