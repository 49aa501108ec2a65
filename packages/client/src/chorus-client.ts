import type {
  ClientFrame,
  ErrorCode,
  ServerFrame,
  SessionEvent,
  SocketErrorFrame,
  WelcomeFrame,
} from '@chorus/protocol';
import { DEFAULT_BACKOFF } from './backoff.js';
import { Connection } from './connection.js';
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
import { randomChatId, utf8Length } from './environment.js';
import { compareEventIds, FROM_THE_START } from './event-id.js';
import { isSessionEvent, parseServerFrame } from './frames.js';
import { SessionRecord } from './session-record.js';
import { defaultSessionStorage, type OutboxEntry } from './session-storage.js';
import { globalWebSocket } from './socket.js';
import type { ChorusClientOptions, ChorusEvents, ChorusState } from './types.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_MESSAGE_BYTES = 16_384;
/** Resends of chats refused for now (`internal`): 1 s doubling to 30 s, plus up to 0.5 s. */
const RESEND_BASE_MS = 1_000;
const RESEND_CAP_MS = 30_000;
const RESEND_JITTER_MS = 500;

/**
 * A Chorus session: connects (through {@link Connection}), resumes after any drop without losing
 * or repeating an event, resends unacknowledged chats, and keeps the conversation as an
 * immutable {@link ChorusState}. Framework-free; see `@chorus/client/react` for the hook.
 */
export class ChorusClient extends Emitter<ChorusEvents> {
  private readonly connection: Connection;
  private readonly record: SessionRecord;
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly random: () => number;
  private readonly heartbeatOverride: number | undefined;
  private conversation: Conversation = EMPTY_CONVERSATION;
  private snapshot: ChorusState;
  /** The last session event applied; null when the next one starts a fresh view. */
  private lastEventId: string | null = null;
  private maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  private readonly pendingCancels = new Set<string>();
  /** One timer resends the whole outbox, from its head, after a chat was refused for now. */
  private resendTimer: ReturnType<typeof setTimeout> | undefined;
  private resendAt = 0;
  /** The pending resend waits out the session's rate limit, which an ack does not lift. */
  private resendRateLimited = false;
  /** `internal` refusals since the last ack: the exponent of the resend backoff. */
  private resendFailures = 0;
  private closed = false;

  constructor(options: ChorusClientOptions) {
    super();
    const urls = options.urls && options.urls.length > 0 ? options.urls : [options.url ?? ''];
    if (urls.some((url) => !url)) throw new TypeError('ChorusClient needs `url` or `urls`');
    const WebSocket = options.WebSocket ?? globalWebSocket();
    if (!WebSocket) throw new TypeError('no global WebSocket here: pass one, e.g. `ws` in Node 20');
    this.now = options.now ?? Date.now;
    this.newId = options.newId ?? randomChatId;
    this.random = options.random ?? Math.random;
    this.heartbeatOverride = options.heartbeatMs;
    this.record = new SessionRecord(options.storage ?? defaultSessionStorage());
    for (const entry of this.record.outbox) {
      this.conversation = addLocalMessage(this.conversation, entry);
    }
    this.connection = new Connection(
      {
        urls: [...urls],
        WebSocket,
        random: this.random,
        now: this.now,
        backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
        connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        followNetwork: options.watchNetwork ?? true,
      },
      {
        query: () => this.query(),
        frame: (data) => this.onData(data),
        change: (info) => {
          // The next welcome resends the outbox anyway.
          if (info.state !== 'open') this.cancelResend();
          this.publish();
          this.emit('connection', info);
        },
        sessionRejected: () => {
          // The token no longer opens the session: a new one, keeping the unsent chats.
          this.record.forgetCredentials();
          this.startOver();
        },
      },
      this.record.sessionId,
    );
    this.snapshot = this.buildSnapshot();
  }

  /** The current snapshot; a new object after every change. */
  get state(): ChorusState {
    return this.snapshot;
  }

  /** Starts connecting. Calling it again does nothing. */
  connect(): void {
    if (!this.closed) this.connection.start();
  }

  /**
   * Sends a chat message and returns its id. It is kept (and persisted) in the outbox until the
   * gateway acknowledges it, and resent with the same id after every reconnect and after a
   * refusal for now (`rate_limited`, `internal`).
   */
  chat(text: string): string {
    if (this.closed) throw new Error('the client is closed');
    if (text.length === 0) throw new RangeError('a chat message must not be empty');
    if (utf8Length(text) > this.maxMessageBytes) {
      throw new RangeError(`a chat message may have at most ${this.maxMessageBytes} bytes`);
    }
    const entry: OutboxEntry = { id: this.newId(), text, ts: this.now() };
    this.record.add(entry);
    this.conversation = addLocalMessage(this.conversation, entry);
    // While a resend waits, a new chat waits with it so that it cannot overtake a refused one.
    if (this.resendTimer === undefined) this.send({ type: 'chat', id: entry.id, text });
    this.publish();
    return entry.id;
  }

  /** Stops the answer to a message (from any tab of the session). */
  cancel(id: string): void {
    if (this.closed) return;
    if (this.record.remove(id)) {
      // Not acknowledged yet: it may never have reached a gateway. Drop it here, and tell the
      // gateway too in case it did.
      this.conversation = endMessage(this.conversation, id, { cancelled: true });
      this.publish();
    }
    if (!this.send({ type: 'cancel', id })) this.pendingCancels.add(id);
  }

  /** Connects now if no socket is open or opening, skipping any backoff wait. */
  reconnectNow(): void {
    this.connection.reconnectNow();
  }

  /** Closes the socket for good and releases every timer and listener. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelResend();
    this.connection.close();
    this.removeAllListeners();
  }

  private query(): URLSearchParams {
    const params = new URLSearchParams();
    const { sessionId, token } = this.record;
    if (sessionId && token) {
      params.set('session', sessionId);
      params.set('token', token);
      // A client that has seen nothing of its stored session yet (a reload, a new tab) asks for
      // everything retained, so that it shows the conversation so far.
      params.set('lastEventId', this.lastEventId ?? FROM_THE_START);
    }
    return params;
  }

  private onData(data: unknown): void {
    const frame = parseServerFrame(data);
    if (!frame) return;
    if (isSessionEvent(frame)) this.onSessionEvent(frame);
    else this.onSocketFrame(frame);
  }

  private onSocketFrame(frame: Exclude<ServerFrame, SessionEvent>): void {
    switch (frame.type) {
      case 'welcome':
        this.onWelcome(frame);
        return;
      case 'pong':
        return;
      case 'ack':
        this.record.remove(frame.id);
        this.connection.proven();
        this.resendAfterAck();
        this.conversation = markAcked(this.conversation, frame.id);
        this.publish();
        this.emit('ack', frame);
        return;
      case 'reset':
        // What follows is the whole retained window: accept it all and rebuild.
        this.startOver();
        this.emit('reset', frame);
        return;
      case 'error':
        if (frame.replyTo !== undefined && this.record.has(frame.replyTo)) {
          // Refused for good (it would be refused again), or for now: then it is sent again.
          if (frame.code === 'bad_request' || frame.code === 'too_large') {
            this.refuse(frame.replyTo, frame.code, frame.message);
          } else if (frame.code === 'rate_limited' || frame.code === 'internal') {
            this.resendLater(frame);
          }
        }
        this.emit('error', frame);
        return;
      default:
        unreachable(frame);
    }
  }

  private onWelcome(frame: WelcomeFrame): void {
    if (frame.sessionId !== this.record.sessionId) {
      if (this.record.sessionId !== undefined) this.startOver();
      this.lastEventId = null;
    }
    this.record.setCredentials(frame.sessionId, frame.token);
    this.maxMessageBytes = frame.limits.maxMessageBytes;
    this.connection.opened({
      gatewayId: frame.gatewayId,
      sessionId: frame.sessionId,
      heartbeatMs: this.heartbeatOverride ?? frame.heartbeatMs,
    });
    for (const entry of this.record.outbox) {
      // Kept from before a lower limit: the gateway would refuse it, or close on it (1009).
      if (utf8Length(entry.text) > this.maxMessageBytes) {
        this.refuse(entry.id, 'too_large', `over the gateway's ${this.maxMessageBytes} bytes`);
      }
    }
    this.sendOutbox();
    for (const id of this.pendingCancels) this.send({ type: 'cancel', id });
    this.pendingCancels.clear();
    this.emit('welcome', frame);
  }

  private onSessionEvent(event: SessionEvent): void {
    // eventIds strictly increase within a session: anything not newer was seen already.
    if (this.lastEventId !== null && compareEventIds(event.eventId, this.lastEventId) <= 0) return;
    this.lastEventId = event.eventId;
    // A user.message does not take the chat out of the outbox: it is stored before its job is
    // queued, and only the ack says both happened. Until then, resending it is how it recovers.
    this.conversation = applyEvent(this.conversation, event);
    this.publish();
    this.emit('event', event);
    if (event.type === 'error') this.emit('error', event);
  }

  /** Ends a chat the gateway will never accept, and forgets it. */
  private refuse(id: string, code: ErrorCode, message: string): void {
    if (!this.record.remove(id)) return;
    this.conversation = endMessage(this.conversation, id, { error: { code, message } });
    this.publish();
  }

  /**
   * Schedules a resend of the outbox after a chat was refused for now: after the retry time the
   * gateway gave (rate_limited), else with capped exponential backoff. One timer serves every
   * refusal, since it resends them all, in order; only a later retry time moves it.
   */
  private resendLater(frame: SocketErrorFrame): void {
    const asked = frame.code === 'rate_limited' ? frame.retryAfterMs : undefined;
    if (
      this.resendTimer !== undefined &&
      (asked === undefined || this.resendAt >= this.now() + asked)
    ) {
      return;
    }
    const wait = asked ?? Math.min(RESEND_CAP_MS, RESEND_BASE_MS * 2 ** this.resendFailures++);
    const delay = wait + Math.floor(this.random() * RESEND_JITTER_MS);
    this.cancelResend();
    this.resendAt = this.now() + delay;
    this.resendRateLimited = frame.code === 'rate_limited';
    this.resendTimer = setTimeout(() => {
      this.resendTimer = undefined;
      this.sendOutbox();
    }, delay);
  }

  /**
   * An ack shows the gateway works again: the `internal` backoff starts over, and a resend
   * waiting it out goes now instead of holding back chats typed meanwhile (for up to 30 s).
   */
  private resendAfterAck(): void {
    this.resendFailures = 0;
    if (this.resendTimer === undefined || this.resendRateLimited) return;
    this.cancelResend();
    this.sendOutbox();
  }

  private cancelResend(): void {
    clearTimeout(this.resendTimer);
    this.resendTimer = undefined;
  }

  /** Sends every unacknowledged chat, oldest first; the gateway answers repeats with their ack. */
  private sendOutbox(): void {
    for (const entry of this.record.outbox) {
      this.send({ type: 'chat', id: entry.id, text: entry.text });
    }
  }

  /** A fresh view from here on (a reset, a new session): only the unsent chats carry over. */
  private startOver(): void {
    this.lastEventId = null;
    this.conversation = resetConversation(this.conversation, this.record.ids());
    this.publish();
  }

  private send(frame: ClientFrame): boolean {
    return this.connection.send(JSON.stringify(frame));
  }

  private publish(): void {
    this.snapshot = this.buildSnapshot();
    this.emit('change', this.snapshot);
  }

  private buildSnapshot(): ChorusState {
    return {
      ...this.conversation,
      connection: this.connection.info,
      outbox: this.record.outbox,
    };
  }
}

function unreachable(value: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(value)}`);
}
