import type { ServerFrame } from '@chorus/protocol';
import { type Socket, connOf } from './connection.js';
import type { ReplicaStats } from './replica-stats.js';

/** uWS `send` result codes. */
const BACKPRESSURE = 0;

/** Sends one frame to one socket; a closed socket is skipped, backpressure counted. */
export function sendRaw(ws: Socket, stats: ReplicaStats, frame: string): void {
  if (connOf(ws).closed) return;
  const result = ws.send(frame, false, false);
  stats.metrics.framesSent();
  if (result === BACKPRESSURE) stats.metrics.backpressured();
}

export function sendFrame(ws: Socket, stats: ReplicaStats, frame: ServerFrame): void {
  sendRaw(ws, stats, JSON.stringify(frame));
}

/** Resolves once the socket's send buffer is below `limit` bytes (or the socket closed). */
export function belowBufferLimit(ws: Socket, limit: number): Promise<void> {
  const conn = connOf(ws);
  if (conn.closed || ws.getBufferedAmount() < limit) return Promise.resolve();
  return new Promise((resolve) => (conn.drainWaiters ??= []).push(resolve));
}
