import { backoffDelay, type BackoffOptions } from './backoff.js';
import { watchNetwork } from './environment.js';
import { nextStepAfterClose } from './reconnect-policy.js';
import { SOCKET_OPEN, type WebSocketConstructor, type WebSocketLike } from './socket.js';
import type { CloseReason, ConnectionInfo } from './types.js';

/** Close codes for sockets the client gives up itself, as the protocol names those cases. */
const NO_HEARTBEAT = 4408;
const ABNORMAL = 1006;
/** A welcomed socket that stays up this long proves the way works: backoff starts over. */
const STABLE_MS = 5_000;

type Timer = ReturnType<typeof setTimeout>;

export interface ConnectionOptions {
  urls: readonly string[];
  WebSocket: WebSocketConstructor;
  random: () => number;
  now: () => number;
  backoff: BackoffOptions;
  connectTimeoutMs: number;
  followNetwork: boolean;
}

export interface ConnectionHandlers {
  /** Query parameters for the next attempt (session, token, lastEventId). */
  query(): URLSearchParams;
  /** A frame from the socket in use. */
  frame(data: unknown): void;
  /** The connection info changed. */
  change(info: ConnectionInfo): void;
  /** 4401: the session must be forgotten before the next attempt (made at once). */
  sessionRejected(): void;
}

/**
 * One WebSocket at a time, replaced whenever it fails: the close-code policy, backoff, replica
 * rotation, connect timeout, heartbeat and the browser's online/offline events. It knows nothing
 * of what the frames mean; the session logic above it calls {@link opened} on `welcome`.
 */
export class Connection {
  private socket: WebSocketLike | null = null;
  private welcomed = false;
  private urlIndex = 0;
  private attempt = 0;
  private lastFrameAt = 0;
  private started = false;
  /** After 4001: no automatic reconnect until reconnectNow(). */
  private halted = false;
  private closed = false;
  private reconnectTimer: Timer | undefined;
  private connectTimer: Timer | undefined;
  private stableTimer: Timer | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private unwatchNetwork: (() => void) | undefined;
  private current: ConnectionInfo;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly handlers: ConnectionHandlers,
    sessionId?: string,
  ) {
    this.current = { state: 'connecting', url: this.url, attempt: 0 };
    if (sessionId) this.current.sessionId = sessionId;
  }

  get info(): ConnectionInfo {
    return this.current;
  }

  /** True between the gateway's welcome and the socket's end: frames may be sent. */
  get usable(): boolean {
    return this.welcomed;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (this.options.followNetwork) {
      this.unwatchNetwork = watchNetwork({
        online: () => {
          if (!this.halted) this.reconnectNow();
        },
        offline: () => {
          if (this.socket) this.drop(this.socket, ABNORMAL, 'browser went offline');
        },
      });
    }
    this.open();
  }

  /** The gateway welcomed the socket: it is usable, pings start. */
  opened(welcome: { gatewayId: string; sessionId: string; heartbeatMs: number }): void {
    clearTimeout(this.connectTimer);
    this.welcomed = true;
    this.startHeartbeat(welcome.heartbeatMs);
    // Backoff starts over only once the socket proves itself: a gateway that welcomes and closes
    // at once (1009 on a resent frame, a crash loop) would otherwise be hit in a tight loop.
    this.stableTimer = setTimeout(() => this.proven(), STABLE_MS);
    this.update({
      state: 'open',
      gatewayId: welcome.gatewayId,
      sessionId: welcome.sessionId,
      retryAt: undefined,
    });
  }

  /** The connection works (it stayed up, or a chat was acked): backoff starts over. */
  proven(): void {
    clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    if (this.attempt === 0) return;
    this.attempt = 0;
    this.update({ attempt: 0 });
  }

  /** Sends a text frame on a welcomed socket; false if there is none. */
  send(text: string): boolean {
    const socket = this.socket;
    if (!this.welcomed || !socket || socket.readyState !== SOCKET_OPEN) return false;
    try {
      socket.send(text);
      return true;
    } catch {
      return false; // closing: its close event brings the reconnect
    }
  }

  /** Connects now if no socket is open or opening, skipping any backoff wait. */
  reconnectNow(): void {
    if (this.closed || !this.started || this.socket) return;
    this.halted = false;
    this.open();
  }

  /** Closes for good, releasing every timer and listener. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatchNetwork?.();
    this.unwatchNetwork = undefined;
    const socket = this.socket;
    this.socket = null;
    this.welcomed = false;
    if (socket) closeQuietly(socket, 1000, 'client closed');
    this.finish('closed');
  }

  private get url(): string {
    return this.options.urls[this.urlIndex % this.options.urls.length] ?? '';
  }

  private open(): void {
    this.clearTimers();
    const base = this.url;
    const query = this.handlers.query().toString();
    const url = query ? `${base}${base.includes('?') ? '&' : '?'}${query}` : base;
    let socket: WebSocketLike;
    try {
      socket = new this.options.WebSocket(url);
    } catch {
      this.afterClose(ABNORMAL, 'could not open a socket');
      return;
    }
    this.socket = socket;
    this.welcomed = false;
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.lastFrameAt = this.options.now();
      this.handlers.frame(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.drop(socket, event.code, event.reason);
    };
    socket.onerror = () => {
      // A close event follows every error; that is where the connection acts.
    };
    this.connectTimer = setTimeout(
      () => this.drop(socket, ABNORMAL, 'no welcome in time'),
      this.options.connectTimeoutMs,
    );
    const state = this.current.state === 'connecting' ? 'connecting' : 'reconnecting';
    this.update({ state, url: base, retryAt: undefined, closeReason: undefined });
  }

  private startHeartbeat(heartbeatMs: number): void {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    this.lastFrameAt = this.options.now();
    this.heartbeatTimer = setInterval(() => {
      if (!socket || this.socket !== socket) return;
      // Pings are answered by pongs: silence for two intervals means the connection is dead.
      if (this.options.now() - this.lastFrameAt >= 2 * heartbeatMs) {
        this.drop(socket, NO_HEARTBEAT, 'no frame within twice heartbeatMs');
      } else {
        this.send('{"type":"ping"}');
      }
    }, heartbeatMs);
  }

  /** Forgets a socket (closing it if still open) and decides what comes next. */
  private drop(socket: WebSocketLike, code: number, reason: string): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.welcomed = false;
    closeQuietly(socket, 1000, reason);
    this.afterClose(code, reason);
  }

  private afterClose(code: number, reason: string): void {
    this.clearTimers();
    if (this.closed) return;
    const lastClose = { code, reason };
    const step = nextStepAfterClose(code);
    if (step === 'halt') {
      this.halted = true;
      this.finish('replaced', lastClose);
      return;
    }
    this.urlIndex = (this.urlIndex + 1) % this.options.urls.length;
    if (step === 'new-session') this.handlers.sessionRejected();
    let delay = 0;
    if (step === 'backoff') {
      delay = backoffDelay(this.attempt, this.options.backoff, this.options.random);
      this.attempt += 1;
    }
    // While the browser says it is offline, wait for its `online` event (and retry at the cap).
    if (isOffline()) delay = this.options.backoff.capMs;
    this.reconnectTimer = setTimeout(() => this.open(), delay);
    this.update({
      state: 'reconnecting',
      url: this.url,
      attempt: this.attempt,
      retryAt: this.options.now() + delay,
      lastClose,
    });
  }

  private finish(reason: CloseReason, lastClose?: { code: number; reason: string }): void {
    this.clearTimers();
    this.update({ state: 'closed', closeReason: reason, retryAt: undefined, lastClose });
  }

  private update(patch: Partial<ConnectionInfo>): void {
    const next: ConnectionInfo = { ...this.current, ...patch };
    for (const key of Object.keys(next) as (keyof ConnectionInfo)[]) {
      if (next[key] === undefined) delete next[key];
    }
    this.current = next;
    this.handlers.change(next);
  }

  private clearTimers(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    clearInterval(this.heartbeatTimer);
    this.reconnectTimer = undefined;
    this.connectTimer = undefined;
    this.stableTimer = undefined;
    this.heartbeatTimer = undefined;
  }
}

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  // `ws` emits 'error' when a connecting socket is closed; an error with no listener would throw.
  socket.onerror = () => undefined;
  try {
    socket.close(code, reason.slice(0, 120));
  } catch {
    // Already closed.
  }
}

function isOffline(): boolean {
  return (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false;
}
