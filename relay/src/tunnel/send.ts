import { encodeFrame, encodeWindow, FrameType } from '@wingman/shared';
import type { Session } from './session-registry.ts';

/** Tunnel socket backpressure above which visitor uploads pause until `drain`. */
export const TUNNEL_HIGH_WATER_BYTES = 1024 * 1024;

/** Send bytes on a session's tunnel. False when there is no tunnel or the frame was dropped. */
export function sendToClient(session: Session, bytes: Uint8Array): boolean {
  const ws = session.tunnel;
  if (!ws) return false;
  // 0 = sent, 1 = buffered (backpressure), 2 = dropped; behavior closes on the backpressure limit.
  return ws.send(bytes, true) !== 2;
}

export function tunnelBackpressured(session: Session): boolean {
  return session.tunnel !== undefined && session.tunnel.getBufferedAmount() > TUNNEL_HIGH_WATER_BYTES;
}

export function sendReset(session: Session, streamId: number, code: string): void {
  sendToClient(session, encodeFrame(FrameType.Reset, streamId, Buffer.from(code)));
}

export function sendCredit(session: Session, streamId: number, bytes: number): void {
  sendToClient(session, encodeWindow(streamId, bytes));
}
