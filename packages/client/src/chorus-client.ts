import type { ClientFrame, ServerFrame, SessionEvent, WelcomeFrame } from '@chorus/protocol';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import {
  addLocalMessage,
  applyEvent,
  EMPTY_CONVERSATION,
  endMessage,
  markAcked,
  resetConversation,
  type Conversation,
} from './conversation.js';
import { Emitter } from './emitter.js';
import { compareEventIds, FROM_THE_START } from './event-id.js';
import { isSessionEvent, parseServerFrame } from './frames.js';
import { randomChatId, utf8Length, watchNetwork } from './environment.js';
import {
  defaultSessionStorage,
  type OutboxEntry,
  type PersistedSession,
  type SessionStorage,
} from './session-storage.js';
import {
  globalWebSocket,
  SOCKET_OPEN,
  type WebSocketConstructor,
  type WebSocketLike,
} from './socket.js';
import type {
  ChorusClientOptions,
  ChorusEvents,
  ChorusState,
  CloseReason,
  ConnectionInfo,
} from './types.js';

/** Close codes of PROTOCOL.md the client acts on (kept here: @chorus/protocol is types-only). */
const DRAINING = 1001;
const REPLACED = 4001;
const BAD_TOKEN = 4401;
const NO_HEARTBEAT = 4408;
const ABNORMAL = 1006;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_MESSAGE_BYTES = 16_384;

type Timer = ReturnType<typeof setTimeout>;

/**
 * A Chorus session over one WebSocket at a time: connects, resumes after any drop without losing
 * or repeating an event, resends unacknowledged chats, and keeps the conversation as an
 * immutable {@link ChorusState}. Framework-free; see `@chorus/client/react` for the hook.
 */
export class ChorusClient extends Emitter<ChorusEvents> {
  private readonly urls: readonly string[];
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly storage: SessionStorage;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly backoff: BackoffOptions;
  private readonly connectTimeoutMs: number;
  private readonly heartbeatOverride: number | undefined;
  private readonly followNetwork: boolean;

  private persisted: PersistedSession;
  private conversation: Conversation = EMPTY_CONVERSATION;
  private connection: ConnectionInfo;
  private snapshot: ChorusState;

  private socket: WebSocketLike | null = null;
  private welcomed = false;
  private urlIndex = 0;
  private attempt = 0;
  private lastEventId: string | null = null;
  private lastFrameAt = 0;
  private maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  private readonly pendingCancels = new Set<string>();
  private started = false;
  /** After 4001: no automatic reconnect until reconnectNow(). */
  private halted = false;
  private closed = false;
  private reconnectTimer: Timer | undefined;
  private connectTimer: Timer | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private unwatchNetwork: (() => void) | undefined;

  constructor(options: ChorusClientOptions) {
    super();
    const urls = options.urls && options.urls.length > 0 ? options.urls : [options.url ?? ''];
    if (urls.some((url) => !url)) throw new TypeError('ChorusClient needs `url` or `urls`');
    this.urls = [...urls];
    const WebSocketImpl = options.WebSocket ?? globalWebSocket();
    if (!WebSocketImpl) {
      throw new TypeError('no global WebSocket here: pass one, e.g. `ws` in Node 20');
    }
    this.WebSocketImpl = WebSocketImpl;
    this.storage = options.storage ?? defaultSessionStorage();
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.newId = options.newId ?? randomChatId;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.heartbeatOverride = options.heartbeatMs;
    this.followNetwork = options.watchNetwork ?? true;

    this.persisted = this.storage.load() ?? { outbox: [] };
    for (const entry of this.persisted.outbox) {
      this.conversation = addLocalMessage(this.conversation, entry);
    }
    this.connection = { state: 'connecting', url: this.currentUrl, attempt: 0 };
    if (this.persisted.sessionId) this.connection.sessionId = this.persisted.sessionId;
    this.snapshot = this.buildSnapshot();
  }

  /** The current snapshot; a new object after every change. */
  get state(): ChorusState {
    return this.snapshot;
  }

  /** Starts connecting. Calling it again does nothing. */
  connect(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (this.followNetwork) {
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

  /**
   * Sends a chat message and returns its id. It is kept (and persisted) in the outbox until the
   * gateway acknowledges it, and resent with the same id after every reconnect.
   */
  chat(text: string): string {
    if (this.closed) throw new Error('the client is closed');
    if (text.length === 0) throw new RangeError('a chat message must not be empty');
    if (utf8Length(text) > this.maxMessageBytes) {
      throw new RangeError(`a chat message may have at most ${this.maxMessageBytes} bytes`);
    }
    const entry: OutboxEntry = { id: this.newId(), text, ts: this.now() };
    this.setOutbox([...this.persisted.outbox, entry]);
    this.conversation = addLocalMessage(this.conversation, entry);
    if (this.welcomed) this.send({ type: 'chat', id: entry.id, text });
    this.publish();
    return entry.id;
  }

  /** Stops the answer to a message (from any tab of the session). */
  cancel(id: string): void {
    if (this.closed) return;
    if (this.persisted.outbox.some((entry) => entry.id === id)) {
      // Not acknowledged yet: it may never have reached a gateway. Drop it here, and tell the
      // gateway too in case it did.
      this.setOutbox(this.persisted.outbox.filter((entry) => entry.id !== id));
      this.conversation = endMessage(this.conversation, id, { cancelled: true });
      this.publish();
    }
    if (this.welcomed) this.send({ type: 'cancel', id });
    else this.pendingCancels.add(id);
  }

  /** Connects now if no socket is open or opening, skipping any backoff wait. */
  reconnectNow(): void {
    if (this.closed || !this.started || this.socket) return;
    this.halted = false;
    this.open();
  }

  /** Closes the socket for good and releases every timer and listener. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatchNetwork?.();
    this.unwatchNetwork = undefined;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    this.welcomed = false;
    if (socket) closeQuietly(socket, 1000, 'client closed');
    this.finish('closed');
    this.removeAllListeners();
  }

  private get currentUrl(): string {
    return this.urls[this.urlIndex % this.urls.length] ?? '';
  }

  private open(): void {
    this.clearTimers();
    const base = this.currentUrl;
    const params = new URLSearchParams();
    const { sessionId, token } = this.persisted;
    if (sessionId && token) {
      params.set('session', sessionId);
      params.set('token', token);
      // A client that has seen nothing of its stored session yet (a reload, a new tab) asks for
      // everything retained, so that it shows the conversation so far.
      params.set('lastEventId', this.lastEventId ?? FROM_THE_START);
    }
    const query = params.toString();
    const url = query ? `${base}${base.includes('?') ? '&' : '?'}${query}` : base;

    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(url);
    } catch {
      this.afterClose(ABNORMAL, 'could not open a socket');
      return;
    }
    this.socket = socket;
    this.welcomed = false;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.onData(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.drop(socket, event.code, event.reason);
    };
    socket.onerror = () => {
      // A close event follows every error; that is where the client acts.
    };
    this.connectTimer = setTimeout(
      () => this.drop(socket, ABNORMAL, 'no welcome in time'),
      this.connectTimeoutMs,
    );
    const state = this.connection.state === 'connecting' ? 'connecting' : 'reconnecting';
    this.setConnection({ state, url: base, retryAt: undefined, closeReason: undefined });
  }

  private onData(data: unknown): void {
    this.lastFrameAt = this.now();
    const frame = parseServerFrame(data);
    if (!frame) return;
    if (isSessionEvent(frame)) {
      this.onSessionEvent(frame);
      return;
    }
    this.onSocketFrame(frame);
  }

  private onSocketFrame(frame: Exclude<ServerFrame, SessionEvent>): void {
    switch (frame.type) {
      case 'welcome':
        this.onWelcome(frame);
        return;
      case 'pong':
        return;
      case 'ack':
        this.removeFromOutbox(frame.id);
        this.conversation = markAcked(this.conversation, frame.id);
        this.publish();
        this.emit('ack', frame);
        return;
      case 'reset':
        // What follows is the whole retained window: accept it all and rebuild.
        this.lastEventId = null;
        this.conversation = resetConversation(this.conversation, this.outboxIds());
        this.publish();
        this.emit('reset', frame);
        return;
      case 'error':
        if (
          frame.replyTo !== undefined &&
          (frame.code === 'bad_request' || frame.code === 'too_large') &&
          this.removeFromOutbox(frame.replyTo)
        ) {
          // The gateway refused this chat: resending it would be refused again.
          const error = { code: frame.code, message: frame.message };
          this.conversation = endMessage(this.conversation, frame.replyTo, { error });
          this.publish();
        }
        this.emit('error', frame);
        return;
      default:
        unreachable(frame);
    }
  }

  private onWelcome(frame: WelcomeFrame): void {
    clearTimeout(this.connectTimer);
    if (frame.sessionId !== this.persisted.sessionId) {
      if (this.persisted.sessionId !== undefined) this.startOver();
      this.lastEventId = null;
    }
    this.persisted = { ...this.persisted, sessionId: frame.sessionId, token: frame.token };
    this.storage.save(this.persisted);
    this.welcomed = true;
    this.attempt = 0;
    this.maxMessageBytes = frame.limits.maxMessageBytes;
    this.startHeartbeat(this.heartbeatOverride ?? frame.heartbeatMs);
    for (const entry of this.persisted.outbox) {
      this.send({ type: 'chat', id: entry.id, text: entry.text });
    }
    for (const id of this.pendingCancels) this.send({ type: 'cancel', id });
    this.pendingCancels.clear();
    this.setConnection({
      state: 'open',
      gatewayId: frame.gatewayId,
      sessionId: frame.sessionId,
      attempt: 0,
      retryAt: undefined,
    });
    this.emit('welcome', frame);
  }

  private onSessionEvent(event: SessionEvent): void {
    // eventIds strictly increase within a session: anything not newer was seen already.
    if (this.lastEventId !== null && compareEventIds(event.eventId, this.lastEventId) <= 0) return;
    this.lastEventId = event.eventId;
    // A stored user.message means the chat arrived, even if its ack was lost with a socket.
    if (event.type === 'user.message') this.removeFromOutbox(event.id);
    this.conversation = applyEvent(this.conversation, event);
    this.publish();
    this.emit('event', event);
    if (event.type === 'error') this.emit('error', event);
  }

  private startHeartbeat(heartbeatMs: number): void {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    this.lastFrameAt = this.now();
    this.heartbeatTimer = setInterval(() => {
      if (!socket || this.socket !== socket) return;
      // Pings are answered by pongs: silence for two intervals means the connection is dead.
      if (this.now() - this.lastFrameAt >= 2 * heartbeatMs) {
        this.drop(socket, NO_HEARTBEAT, 'no frame within twice heartbeatMs');
      } else {
        this.send({ type: 'ping' });
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
    const lastClose = { code, reason };
    if (this.closed) return;
    if (code === REPLACED) {
      this.halted = true;
      this.finish('replaced', lastClose);
      return;
    }
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    if (code === BAD_TOKEN) {
      // The token no longer opens the session: start a new one at once, keeping the outbox.
      this.persisted = { outbox: this.persisted.outbox };
      this.storage.save(this.persisted);
      this.startOver();
      this.schedule(0, lastClose);
      return;
    }
    if (code === DRAINING) {
      this.schedule(0, lastClose);
      return;
    }
    // 1013 (try again later), 4408, 4429, 1006 and the rest: exponential backoff, full jitter.
    const delay = backoffDelay(this.attempt, this.backoff, this.random);
    this.attempt += 1;
    this.schedule(delay, lastClose);
  }

  private schedule(delayMs: number, lastClose: { code: number; reason: string }): void {
    // While the browser says it is offline, wait for its `online` event (and retry at the cap).
    const delay = isOffline() ? this.backoff.capMs : delayMs;
    this.reconnectTimer = setTimeout(() => this.open(), delay);
    this.setConnection({
      state: 'reconnecting',
      url: this.currentUrl,
      attempt: this.attempt,
      retryAt: this.now() + delay,
      lastClose,
    });
  }

  private finish(reason: CloseReason, lastClose?: { code: number; reason: string }): void {
    this.clearTimers();
    this.setConnection({ state: 'closed', closeReason: reason, retryAt: undefined, lastClose });
  }

  /** A different session from here on: only the unsent chats carry over. */
  private startOver(): void {
    this.lastEventId = null;
    this.conversation = resetConversation(this.conversation, this.outboxIds());
    this.publish();
  }

  private send(frame: ClientFrame): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== SOCKET_OPEN) return;
    try {
      socket.send(JSON.stringify(frame));
    } catch {
      // The socket is closing; its close event brings the reconnect and the resend.
    }
  }

  private outboxIds(): Set<string> {
    return new Set(this.persisted.outbox.map((entry) => entry.id));
  }

  /** Removes a chat from the outbox; true if it was there. */
  private removeFromOutbox(id: string): boolean {
    const outbox = this.persisted.outbox.filter((entry) => entry.id !== id);
    if (outbox.length === this.persisted.outbox.length) return false;
    this.setOutbox(outbox);
    return true;
  }

  private setOutbox(outbox: OutboxEntry[]): void {
    this.persisted = { ...this.persisted, outbox };
    this.storage.save(this.persisted);
  }

  private setConnection(patch: Partial<ConnectionInfo>): void {
    const next: ConnectionInfo = { ...this.connection, ...patch };
    for (const key of Object.keys(next) as (keyof ConnectionInfo)[]) {
      if (next[key] === undefined) delete next[key];
    }
    this.connection = next;
    this.publish();
    this.emit('connection', next);
  }

  private publish(): void {
    this.snapshot = this.buildSnapshot();
    this.emit('change', this.snapshot);
  }

  private buildSnapshot(): ChorusState {
    return { ...this.conversation, connection: this.connection, outbox: this.persisted.outbox };
  }

  private clearTimers(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeatTimer);
    this.reconnectTimer = undefined;
    this.connectTimer = undefined;
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

function unreachable(value: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(value)}`);
}
