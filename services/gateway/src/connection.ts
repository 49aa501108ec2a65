import type { WebSocket } from './uws.js';

/** A buffered live event, held while a socket replays the log. */
export interface PendingEvent {
  eventId: string;
  frame: string;
}

/** Per-socket state, kept in the uWS socket's user data. */
export interface Connection {
  connectionId: string;
  sessionId: string;
  token: string;
  /** 4401 when the upgrade carried a bad session token: the socket is closed on open. */
  rejectWith?: number;
  /** The client asked to join an existing session. */
  joining: boolean;
  lastEventId?: string;
  ip: string;
  /** Counted against its address's open-connection limit (released on close). */
  admitted: boolean;
  openedAt: number;
  lastSeen: number;
  closed: boolean;
  /** Frames of one socket are handled one after another, in order. */
  chain: Promise<void>;
  /** Live events that arrived while the socket replays the log; null when live. */
  catchingUp: PendingEvent[] | null;
  /** Whether the socket is subscribed to its session's uWS topic. */
  live: boolean;
  drainWaiters: (() => void)[];
}

export type Socket = WebSocket<Connection>;

export const sessionTopic = (sessionId: string) => `s:${sessionId}`;
