import type { WebSocket } from './uws.js';

/** A buffered live event, held while a socket replays the log. */
export interface PendingEvent {
  eventId: string;
  frame: string;
}

/** A live event held for a socket that reads too slowly: its body, sent with its eventId later. */
export interface HeldEvent {
  eventId: string;
  body: string;
}

/** A frame waiting for the socket's previous one (or its welcome): its text, null if binary. */
export type QueuedFrame = { text: string | null; byteLength: number };

const CLOCK_ORIGIN = Date.now();
/** The gateway's clock ticks every 64 ms. */
export const TICK_MS = 64;

/**
 * Ticks since this process's start, as a 32-bit integer (for 4 years): V8 keeps it in the
 * socket's field itself, where a millisecond timestamp would be a boxed double per socket.
 */
export const clock = () => ((Date.now() - CLOCK_ORIGIN) / TICK_MS) | 0;

/**
 * Per-socket state. uWS copies the fields of a socket's user data onto its socket object, where
 * past a dozen they turn it into a slow, large dictionary; so the user data is one field,
 * `conn`, and the state is this class: one shape, its fields inside the object.
 */
export class Connection {
  /** The session token for the welcome; '' once sent. */
  token: string;
  /** 4401 when the upgrade carried a bad session token: the socket is closed on open; else 0. */
  rejectWith: number;
  /** Until the welcome: the replay point the client asked for; then undefined. */
  lastEventId: string | undefined;
  /** Counted against its address's open-connection limit (released on close). */
  admitted = false;
  /** When a frame last arrived, in ticks of the gateway's clock (`clock()`). */
  lastSeen = clock();
  closed = false;
  /** A frame (or the welcome) is being handled: frames of one socket go one after another. */
  busy = false;
  /** Frames that arrived while busy, in order; null when none waits. */
  queue: QueuedFrame[] | null = null;
  /** Live events that arrived while the socket replays the log; null when live. */
  catchingUp: PendingEvent[] | null = null;
  /** The UTF-16 length of the frames in `catchingUp` (about their bytes). */
  catchingUpBytes = 0;
  /** `catchingUp` passed its cap and was emptied: the replay reads those events from the log. */
  catchUpDropped = false;
  /** Whether the socket gets its session's live events as they come. */
  live = false;
  /** Whether it gets them through its session's uWS topic (see SessionFanout). */
  onTopic = false;
  /** Live events to send at the end of this event-loop turn (see TurnBatch); null when none. */
  batched: string[] | null = null;
  /**
   * After a replay, until the first live event past it arrives: the last eventId replayed. An
   * event published before the replay's read may still be on its way from Redis (another
   * connection); it is dropped for this socket rather than sent twice.
   */
  seam: string | null = null;
  /**
   * Live events held while the socket reads too slowly (off its topic; see SessionFanout), with
   * consecutive deltas of one reply merged; null when the socket keeps up.
   */
  held: HeldEvent[] | null = null;
  /** Bytes of `held`. */
  heldBytes = 0;
  /** Waiting for the socket's send buffer to drain; null when nothing waits. */
  drainWaiters: (() => void)[] | null = null;

  constructor(
    readonly connectionId: string,
    readonly sessionId: string,
    /** The client asked to join an existing session. */
    readonly joining: boolean,
    readonly ip: string,
    token: string,
    rejectWith: number,
    lastEventId: string | undefined,
  ) {
    this.token = token;
    this.rejectWith = rejectWith;
    this.lastEventId = lastEventId;
  }
}

/** What uWS keeps for a socket (see Connection). */
export interface SocketData {
  conn: Connection;
}

export type Socket = WebSocket<SocketData>;

export const connOf = (ws: Socket): Connection => ws.getUserData().conn;

export const sessionTopic = (sessionId: string) => `s:${sessionId}`;
