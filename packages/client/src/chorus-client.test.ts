import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChorusClient } from './chorus-client.js';
import {
  memorySession,
  webStorageSession,
  type PersistedSession,
  type WebStorageLike,
} from './session-storage.js';
import type { SocketCloseEvent, SocketMessageEvent, WebSocketLike } from './socket.js';
import type { ChorusClientOptions } from './types.js';

type Frame = Record<string, unknown>;

/** A WebSocket whose server side the test plays: it welcomes, sends frames and drops. */
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: SocketMessageEvent) => void) | null = null;
  onclose: ((event: SocketCloseEvent) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Frame[] = [];

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  static last(): FakeSocket {
    const socket = FakeSocket.all.at(-1);
    if (!socket) throw new Error('no socket opened yet');
    return socket;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(): void {
    this.readyState = 3;
  }

  welcome(maxMessageBytes = 16_384, session = { sessionId: 's1', token: 't1' }): void {
    this.readyState = 1;
    this.receive({
      type: 'welcome',
      protocol: 1,
      ...session,
      connectionId: 'c-1',
      gatewayId: 'g1',
      resumed: false,
      heartbeatMs: 60_000,
      limits: { maxMessageBytes },
    });
  }

  receive(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }

  /** The ids of the chats sent on this socket, in order. */
  chats(): unknown[] {
    return this.sent.filter((f) => f.type === 'chat').map((f) => f.id);
  }
}

let nextId = 0;
const clients: ChorusClient[] = [];
const client = (options: Partial<ChorusClientOptions> = {}, saved?: PersistedSession) => {
  const chorus = new ChorusClient({
    url: 'ws://gateway/ws',
    WebSocket: FakeSocket,
    storage: memorySession(saved ?? null),
    watchNetwork: false,
    random: () => 0,
    newId: () => `m${++nextId}`,
    ...options,
  });
  clients.push(chorus);
  return chorus;
};
/** A client with an open, welcomed socket. */
const connected = (options: Partial<ChorusClientOptions> = {}) => {
  const chorus = client(options);
  chorus.connect();
  FakeSocket.last().welcome();
  return { chorus, socket: FakeSocket.last() };
};
const refuse = (socket: FakeSocket, id: string, code: string, message: string) =>
  socket.receive({ type: 'error', code, message, replyTo: id });
/** As the gateway refuses a chat over its session's rate: the wait in words and in ms. */
const rateLimit = (socket: FakeSocket, id: string, seconds: number) =>
  socket.receive({
    type: 'error',
    code: 'rate_limited',
    message: `too many messages; retry in ${seconds} s`,
    replyTo: id,
    retryAfterMs: seconds * 1000,
  });
const ack = (socket: FakeSocket, id: string, eventId: string) =>
  socket.receive({ type: 'ack', id, eventId });

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.all = [];
  nextId = 0;
});
afterEach(() => {
  for (const chorus of clients.splice(0)) chorus.close();
  vi.useRealTimers();
});

describe('ChorusClient outbox', () => {
  it('keeps a chat until its ack, not its user.message, and resends it on the next welcome', () => {
    const { chorus, socket } = connected();
    const id = chorus.chat('hello');
    // Stored and broadcast, but the gateway died before queueing its job: no ack.
    socket.receive({ type: 'user.message', eventId: '1-1', id, text: 'hello', ts: 1 });
    expect(chorus.state.messages).toMatchObject([{ id, status: 'sent' }]);
    expect(chorus.state.outbox.map((entry) => entry.id)).toEqual([id]);

    socket.drop(1006);
    vi.runOnlyPendingTimers();
    const next = FakeSocket.last();
    expect(next).not.toBe(socket);
    next.welcome();
    expect(next.chats()).toEqual([id]);
    expect(chorus.state.messages).toMatchObject([{ id, status: 'sent' }]);

    ack(next, id, '1-1');
    expect(chorus.state.outbox).toEqual([]);
    expect(chorus.state.messages).toMatchObject([{ id, status: 'sent' }]);
  });

  it('still shows a chat stored but not acked after a reset, and in its place after the replay', () => {
    const { chorus, socket } = connected();
    const id = chorus.chat('mine');
    socket.receive({ type: 'user.message', eventId: '1-1', id: 'other', text: 'theirs', ts: 1 });
    socket.receive({ type: 'user.message', eventId: '1-2', id, text: 'mine', ts: 2 });
    socket.receive({ type: 'reset', reason: 'history_truncated' });
    expect(chorus.state.messages).toMatchObject([{ id, status: 'queued' }]);
    socket.receive({ type: 'user.message', eventId: '1-1', id: 'other', text: 'theirs', ts: 1 });
    socket.receive({ type: 'user.message', eventId: '1-2', id, text: 'mine', ts: 2 });
    expect(chorus.state.messages).toMatchObject([
      { id: 'other', status: 'sent' },
      { id, status: 'sent' },
    ]);
    expect(chorus.state.outbox.map((entry) => entry.id)).toEqual([id]);
  });

  it('keeps a waiting chat in its place after a reset whose window no longer holds it', () => {
    const { chorus, socket } = connected();
    const mine = chorus.chat('mine');
    // Stored, but the gateway died before queueing its job: no ack.
    socket.receive({ type: 'user.message', eventId: '1-1', id: mine, text: 'mine', ts: 1 });
    const theirs = [
      { type: 'user.message', eventId: '1-2', id: 'other', text: 'theirs', ts: 2 },
      {
        type: 'reply.end',
        eventId: '1-3',
        replyTo: 'other',
        agent: 'tutor',
        agents: [],
        text: 'a',
      },
    ];
    for (const event of theirs) socket.receive(event);
    const later = chorus.chat('later');
    const shown = () => chorus.state.messages.map((m) => [m.id, m.status]);
    expect(shown()).toEqual([
      [mine, 'sent'],
      ['other', 'done'],
      [later, 'queued'],
    ]);

    // Back after a while: the retained window starts after mine's user.message.
    socket.drop(1006);
    vi.runOnlyPendingTimers();
    const next = FakeSocket.last();
    next.welcome();
    next.receive({ type: 'reset', reason: 'history_truncated' });
    for (const event of theirs) next.receive(event);
    next.receive({ type: 'user.message', eventId: '1-4', id: 'another', text: 'more', ts: 4 });
    expect(shown()).toEqual([
      [mine, 'queued'],
      ['other', 'done'],
      ['another', 'sent'],
      [later, 'queued'],
    ]);
    ack(next, mine, '1-1');
    expect(shown()[0]).toEqual([mine, 'sent']);
  });

  it('drops an outbox entry over the welcome’s maxMessageBytes instead of resending it', () => {
    const saved = { outbox: [{ id: 'big', text: 'x'.repeat(100), ts: 1 }] };
    const chorus = client({}, saved);
    chorus.connect();
    FakeSocket.last().welcome(50);
    expect(FakeSocket.last().chats()).toEqual([]);
    expect(chorus.state.outbox).toEqual([]);
    expect(chorus.state.messages).toMatchObject([
      { id: 'big', status: 'error', error: { code: 'too_large' } },
    ]);
  });
});

describe('ChorusClient tabs sharing one localStorage', () => {
  /** What the tabs of one origin share; each client wraps it in its own storage. */
  const sharedLocalStorage = (): WebStorageLike => {
    const data = new Map<string, string>();
    return {
      getItem: (key) => data.get(key) ?? null,
      setItem: (key, value) => void data.set(key, value),
      removeItem: (key) => void data.delete(key),
    };
  };
  const tab = (local: WebStorageLike) => client({ storage: webStorageSession(local) });
  const storedIds = (local: WebStorageLike) =>
    webStorageSession(local)
      .load()
      ?.outbox.map((entry) => entry.id);
  /** Connects a tab and welcomes it; returns its socket. */
  const online = (chorus: ChorusClient) => {
    chorus.connect();
    FakeSocket.last().welcome();
    return FakeSocket.last();
  };

  it('a chat typed offline in one tab survives the other tab’s saves, and a reload resends it', () => {
    const local = sharedLocalStorage();
    const a = tab(local);
    const socketA = online(a);
    const b = tab(local);
    online(b).drop(1006); // B is offline
    const typedInB = b.chat('typed while offline');
    expect(storedIds(local)).toEqual([typedInB]);

    // A chats and gets acked meanwhile: each of those saves the record.
    ack(socketA, a.chat('from a'), '1-1');
    socketA.drop(1006);
    vi.advanceTimersByTime(0);
    FakeSocket.last().welcome();
    expect(storedIds(local)).toEqual([typedInB]);

    b.close(); // closed before it reconnected
    const socket = online(tab(local)); // a reload
    expect(socket.chats()).toEqual([typedInB]);
    ack(socket, typedInB, '1-2');
    expect(storedIds(local)).toEqual([]);
  });

  it('copes with the ack of a chat it does not hold (another tab took it out of storage)', () => {
    const local = sharedLocalStorage();
    webStorageSession(local).save({
      outbox: [{ id: 'left', text: 'from an earlier page', ts: 1 }],
    });
    const [a, b] = [tab(local), tab(local)];
    const [socketA, socketB] = [online(a), online(b)];
    // Both resend what the earlier page left; the gateway acks each the same.
    expect([socketA.chats(), socketB.chats()]).toEqual([['left'], ['left']]);
    const typedInB = b.chat('mine');
    ack(socketA, 'left', '1-1');
    expect(storedIds(local)).toEqual([typedInB]);
    const acks: unknown[] = [];
    a.on('ack', (frame) => acks.push(frame.id));
    ack(socketA, 'left', '1-1'); // a repeat: A no longer holds it
    ack(socketA, typedInB, '1-2'); // never held by A
    expect(acks).toEqual(['left', typedInB]);
    expect(a.state.outbox).toEqual([]);
    expect(a.state.messages.map((m) => [m.id, m.status])).toEqual([['left', 'sent']]);
    expect(storedIds(local)).toEqual([typedInB]);
    ack(socketB, 'left', '1-1');
    ack(socketB, typedInB, '1-2');
    expect(b.state.outbox).toEqual([]);
    expect(storedIds(local)).toEqual([]);
  });

  it('after 4401, a tab joins the session another tab started instead of starting its own', () => {
    const local = sharedLocalStorage();
    webStorageSession(local).save({ sessionId: 's1', token: 'bad', outbox: [] });
    const [a, b] = [tab(local), tab(local)];
    const query = () => Object.fromEntries(new URL(FakeSocket.last().url).searchParams);
    a.connect();
    FakeSocket.last().drop(4401);
    vi.advanceTimersByTime(0);
    expect(query()).toEqual({});
    FakeSocket.last().welcome(16_384, { sessionId: 's2', token: 't2' });

    b.connect();
    expect(query()).toMatchObject({ session: 's1', token: 'bad' });
    FakeSocket.last().drop(4401);
    vi.advanceTimersByTime(0);
    expect(query()).toEqual({ session: 's2', token: 't2', lastEventId: '0-0' });
    FakeSocket.last().welcome(16_384, { sessionId: 's2', token: 't2' });
    expect(b.state.connection.sessionId).toBe('s2');
    expect(webStorageSession(local).load()).toMatchObject({ sessionId: 's2', token: 't2' });
  });
});

describe('ChorusClient resend on an open socket', () => {
  it('resends a rate_limited chat after the gateway’s retry time plus jitter, from the head', () => {
    const { chorus, socket } = connected({ random: () => 0.5 });
    const first = chorus.chat('one');
    const second = chorus.chat('two');
    rateLimit(socket, first, 3);
    rateLimit(socket, second, 3);
    expect(chorus.state.messages.map((m) => m.status)).toEqual(['queued', 'queued']);
    // A chat typed meanwhile waits its turn, so that it cannot overtake the refused ones.
    const third = chorus.chat('three');
    expect(socket.chats()).toEqual([first, second]);

    vi.advanceTimersByTime(3_249); // 3 s and half of the 500 ms jitter
    expect(socket.chats()).toEqual([first, second]);
    vi.advanceTimersByTime(1);
    expect(socket.chats()).toEqual([first, second, first, second, third]);

    for (const [i, id] of [first, second, third].entries()) ack(socket, id, `1-${i + 1}`);
    expect(chorus.state.outbox).toEqual([]);
    vi.advanceTimersByTime(60_000);
    expect(socket.chats()).toHaveLength(5);
  });

  it('backs off resends refused as internal: 1 s doubling to 30 s, reset by an ack', () => {
    const { chorus, socket } = connected();
    const id = chorus.chat('hello');
    const resendsAfter = (ms: number) => {
      const before = socket.chats().length;
      refuse(socket, id, 'internal', 'service temporarily unavailable; retry shortly');
      vi.advanceTimersByTime(ms - 1);
      expect(socket.chats().length).toBe(before);
      vi.advanceTimersByTime(1);
      expect(socket.chats().length).toBe(before + 1);
    };
    for (const ms of [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]) resendsAfter(ms);

    ack(socket, id, '1-1');
    const other = chorus.chat('again');
    refuse(socket, other, 'internal', 'service temporarily unavailable; retry shortly');
    vi.advanceTimersByTime(1_000);
    expect(socket.chats().at(-1)).toBe(other);
  });

  it('resends at once, with chats typed meanwhile, when an ack shows the gateway works again', () => {
    const { chorus, socket } = connected();
    const unavailable = (id: string) =>
      refuse(socket, id, 'internal', 'service temporarily unavailable; retry shortly');
    const first = chorus.chat('one');
    const second = chorus.chat('two');
    // Redis is down: both are refused and resent after 1, 2, 4, 8 and 16 s.
    for (const ms of [1_000, 2_000, 4_000, 8_000, 16_000]) {
      unavailable(first);
      unavailable(second);
      vi.advanceTimersByTime(ms);
    }
    expect(socket.chats()).toHaveLength(12);
    // Back between the two: the next wait would be 30 s, but the ack says there is no need.
    unavailable(first);
    ack(socket, second, '1-1');
    const third = chorus.chat('three');
    expect(socket.chats().slice(12)).toEqual([first, third]);
    ack(socket, first, '1-2');
    ack(socket, third, '1-3');
    expect(chorus.state.outbox).toEqual([]);
    expect(chorus.state.messages.map((m) => [m.id, m.status])).toEqual([
      [first, 'sent'],
      [second, 'sent'],
      [third, 'sent'],
    ]);

    // The backoff started over: a new refusal waits 1 s again.
    const fourth = chorus.chat('four');
    unavailable(fourth);
    vi.advanceTimersByTime(1_000);
    expect(socket.chats().slice(14)).toEqual([fourth, fourth]);
  });

  it('still waits out a rate limit after an ack: the limit is the session’s, not an outage', () => {
    const { chorus, socket } = connected();
    const first = chorus.chat('one');
    const second = chorus.chat('two');
    rateLimit(socket, first, 3);
    ack(socket, second, '1-1');
    const third = chorus.chat('three');
    expect(socket.chats()).toEqual([first, second]);
    vi.advanceTimersByTime(3_000);
    expect(socket.chats()).toEqual([first, second, first, third]);
  });

  it('keeps one timer for all refusals, and drops it when the socket closes or the client does', () => {
    const { chorus, socket } = connected();
    const first = chorus.chat('one');
    const second = chorus.chat('two');
    refuse(socket, first, 'internal', 'internal error');
    refuse(socket, second, 'internal', 'internal error');
    vi.advanceTimersByTime(1_000);
    expect(socket.chats()).toEqual([first, second, first, second]);

    refuse(socket, first, 'internal', 'internal error');
    socket.drop(1006);
    vi.advanceTimersByTime(1); // the reconnect (random 0 → no delay)
    const next = FakeSocket.last();
    next.welcome();
    expect(next.chats()).toEqual([first, second]);
    vi.advanceTimersByTime(60_000);
    expect(next.chats()).toEqual([first, second]);

    rateLimit(next, first, 5);
    chorus.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('Connection backoff', () => {
  const options = { random: () => 0.999, backoff: { baseMs: 100, capMs: 10_000 } };
  const delay = (chorus: ChorusClient) => (chorus.state.connection.retryAt ?? NaN) - Date.now();

  it('keeps growing while welcomed sockets close at once (e.g. 1009), until one stays up 5 s', () => {
    const chorus = client(options);
    chorus.connect();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      FakeSocket.last().welcome();
      FakeSocket.last().drop(1009);
      delays.push(delay(chorus));
      vi.advanceTimersByTime(delay(chorus));
    }
    expect(delays).toEqual([99, 199, 399, 799]);

    FakeSocket.last().welcome();
    vi.advanceTimersByTime(5_000);
    expect(chorus.state.connection.attempt).toBe(0);
    FakeSocket.last().drop(1006);
    expect(delay(chorus)).toBe(99);
  });

  it('starts over after an ack', () => {
    const chorus = client(options);
    chorus.connect();
    for (let i = 0; i < 3; i++) {
      FakeSocket.last().welcome();
      FakeSocket.last().drop(1006);
      vi.advanceTimersByTime(delay(chorus));
    }
    FakeSocket.last().welcome();
    const id = chorus.chat('hello');
    ack(FakeSocket.last(), id, '1-1');
    FakeSocket.last().drop(1006);
    expect(delay(chorus)).toBe(99);
  });
});
