import type { ServerFrame } from '@chorus/protocol';
import { type Connection, type Socket, connOf } from './connection.js';
import type { ReplicaStats } from './replica-stats.js';

/** uWS `send` result codes. */
const BACKPRESSURE = 0;

/**
 * Sends one frame to one socket, after the frames still batched for it (see TurnBatch); a closed
 * socket is skipped, backpressure counted.
 */
export function sendRaw(ws: Socket, stats: ReplicaStats, frame: string): void {
  const conn = connOf(ws);
  if (conn.closed) return;
  if (conn.batched !== null) sendBatched(ws, conn, stats);
  sendNow(ws, stats, frame);
}

function sendNow(ws: Socket, stats: ReplicaStats, frame: string): void {
  const result = ws.send(frame, false, false);
  stats.metrics.framesSent();
  if (result === BACKPRESSURE) stats.metrics.backpressured();
}

/** Sends a socket's batched frames now, in one write. */
export function sendBatched(ws: Socket, conn: Connection, stats: ReplicaStats): void {
  const frames = conn.batched;
  conn.batched = null;
  if (frames === null || conn.closed) return;
  ws.cork(() => {
    for (const frame of frames) sendNow(ws, stats, frame);
  });
}

/**
 * Frames sent outside uWS's own callbacks (live events from Redis) would cost a write each: they
 * are batched per socket and sent at the end of the event-loop turn, each socket's in one corked
 * write, as uWS does for its topics. A direct send to the socket goes after them (sendRaw).
 * A batch goes out early once it holds BATCH_FRAMES: the slow-consumer check reads the socket's
 * send buffer, which a batch is not in yet, and a busy turn can bring thousands of events.
 */
const BATCH_FRAMES = 64;

export class TurnBatch {
  private sockets: Socket[] = [];

  constructor(private readonly stats: ReplicaStats) {}

  add(ws: Socket, frame: string): void {
    const conn = connOf(ws);
    if (conn.closed) return;
    if (conn.batched === null) {
      conn.batched = [];
      if (this.sockets.push(ws) === 1) setImmediate(this.flush);
    }
    if (conn.batched.push(frame) >= BATCH_FRAMES) sendBatched(ws, conn, this.stats);
  }

  private readonly flush = (): void => {
    const sockets = this.sockets;
    this.sockets = [];
    for (const ws of sockets) sendBatched(ws, connOf(ws), this.stats);
  };
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
