import { encodeReset, encodeWindow } from '@wingman/shared';
import type { Session } from './session-registry.ts';

/** Tunnel socket backpressure above which visitor uploads pause until `drain`. */
export const TUNNEL_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Queue a frame for the session's client; frames queued in one tick go out as
 * one message. Dropped when there is no tunnel (its streams have failed already).
 */
export function sendToClient(session: Session, bytes: Uint8Array): void {
  if (session.tunnel) session.out.push(bytes);
}

export function tunnelBackpressured(session: Session): boolean {
  return session.tunnel !== undefined && session.tunnel.getBufferedAmount() > TUNNEL_HIGH_WATER_BYTES;
}

export function sendReset(session: Session, streamId: number, code: string): void {
  sendToClient(session, encodeReset(streamId, code));
}

export function sendCredit(session: Session, streamId: number, bytes: number): void {
  sendToClient(session, encodeWindow(streamId, bytes));
}
