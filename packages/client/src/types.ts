import type {
  AckFrame,
  ResetFrame,
  SessionEvent,
  SocketErrorFrame,
  WelcomeFrame,
} from '@chorus/protocol';
import type { BackoffOptions } from './backoff.js';
import type { Conversation } from './conversation.js';
import type { OutboxEntry, SessionStorage } from './session-storage.js';
import type { WebSocketConstructor } from './socket.js';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why the client is `closed`: `close()` was called, or another socket replaced it (4001). */
export type CloseReason = 'closed' | 'replaced';

export interface ConnectionInfo {
  state: ConnectionState;
  /** The gateway URL in use, or the one the next attempt goes to. */
  url: string;
  /** The replica of the open socket; while reconnecting, the last one. */
  gatewayId?: string;
  sessionId?: string;
  /** Failed attempts since a socket last stayed up 5 s or got a chat acked. */
  attempt: number;
  /** When the next attempt starts (by the client's `now()`), while one is scheduled. */
  retryAt?: number;
  /** The close code and reason of the last socket that closed. */
  lastClose?: { code: number; reason: string };
  closeReason?: CloseReason;
}

/** Everything a UI shows, as one immutable snapshot: a new object after every change. */
export interface ChorusState extends Conversation {
  connection: ConnectionInfo;
  /** Chats typed and not yet acknowledged, oldest first. */
  outbox: readonly OutboxEntry[];
}

export type SessionErrorEvent = Extract<SessionEvent, { type: 'error' }>;

export interface ChorusEvents {
  /** The state changed (any field). */
  change: ChorusState;
  /** The connection changed (state, replica, URL, attempt). */
  connection: ConnectionInfo;
  welcome: WelcomeFrame;
  /** A new session event, in order, after de-duplication. */
  event: SessionEvent;
  ack: AckFrame;
  reset: ResetFrame;
  /** An error about one frame of this socket, or a session error event. */
  error: SocketErrorFrame | SessionErrorEvent;
}

export interface ChorusClientOptions {
  /** The gateway's WebSocket URL, e.g. `wss://chat.example.com/ws`. */
  url?: string;
  /** Several replicas: the client moves to the next one each time it reconnects. */
  urls?: readonly string[];
  /** The WebSocket class; defaults to the global one (browsers). Node 20 passes `ws`. */
  WebSocket?: WebSocketConstructor;
  /** Where the session and the outbox are kept; localStorage by default, else memory. */
  storage?: SessionStorage;
  /** In [0, 1); drives the backoff jitter. */
  random?: () => number;
  /** Milliseconds; used for dead-connection detection and `retryAt`. */
  now?: () => number;
  /** Chat ids; defaults to a random UUID without dashes. */
  newId?: () => string;
  /** Ping interval; defaults to the `heartbeatMs` of the gateway's welcome. */
  heartbeatMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** An attempt that has no welcome after this long is given up (default 10 s). */
  connectTimeoutMs?: number;
  /** Follow the browser's online/offline events (default true where they exist). */
  watchNetwork?: boolean;
}
