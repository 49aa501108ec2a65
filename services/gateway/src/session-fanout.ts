import { CloseCode, compareEventIds, withEventId } from '@chorus/protocol';
import type { Cluster } from 'ioredis';
import { decodeLiveMessage, type KeySchema, type Redis } from '@chorus/state';
import type { Logger } from '@chorus/observability';
import { sessionTopic, type Connection, type Socket, connOf } from './connection.js';
import { mergeDeltas } from './delta-merge.js';
import type { FirstDeltaClock } from './first-delta-clock.js';
import { LiveFeed } from './live-feed.js';
import type { ReplicaStats, SessionCounts } from './replica-stats.js';
import { sendBatched, sendRaw, TurnBatch } from './send.js';
import type { TemplatedApp } from './uws.js';
import { withTimeout } from './with-timeout.js';

/** A session's sockets on this gateway: most sessions have one, so it is kept bare. */
type Members = Socket | Socket[];

const STATUS_PREFIX = '{"type":"status"';
/**
 * Live events held for a socket during its replay, at most (count, and UTF-16 length of their
 * frames); past either, they are dropped and the replay reads them from the log.
 */
const CATCH_UP_CAP = 256;
const CATCH_UP_BYTES = 1024 * 1024;
const ignore = () => undefined;
/** How long a socket's session subscription may take before the socket is refused (1013). */
const SUBSCRIBE_TIMEOUT_MS = 5_000;

/**
 * A socket whose send buffer passes `slowBytes` is taken off its session's topic; its events are
 * then held (deltas merged) and sent as it drains. Past `maxBytes` waiting in all, it is closed
 * with 4413 and its client replays from its lastEventId.
 */
export interface SlowConsumerLimits {
  slowBytes: number;
  maxBytes: number;
}

export interface Joined {
  /** This socket is the session's first on this gateway. */
  first: boolean;
  /** Settles once the session's events reach this gateway; null when they already do. */
  subscribed: Promise<void> | null;
}

/**
 * Live delivery inside one gateway: one sharded Redis subscription (SSUBSCRIBE, so that on Redis
 * Cluster it goes to the session's shard only) per session that has a socket here, each event
 * serialised once. A session with several sockets here gets it through its uWS topic; a lone
 * socket is sent it directly, since a uWS topic costs ≈ 600 B of native memory per socket.
 *
 * It is also the gateway's one index of its sockets (by session), so that a socket costs one
 * map entry at most: no per-socket maps, sets or promises.
 */
export class SessionFanout implements SessionCounts {
  private readonly sessions = new Map<string, Members>();
  /** Subscriptions not confirmed yet (or failed, until the session leaves), by session. */
  private readonly subscribing = new Map<string, Promise<void>>();
  /** A session's channel is `<channelHead><sessionId><channelTail>`. */
  private readonly channelHead: number;
  private readonly channelTail: number;
  private socketTotal = 0;
  private readonly batch: TurnBatch;
  /** Whether the subscription delivers: see LiveFeed. */
  private readonly feed: LiveFeed;

  constructor(
    private readonly app: TemplatedApp,
    private readonly subscriber: Redis,
    private readonly keys: KeySchema,
    private readonly stats: ReplicaStats,
    private readonly firstDelta: FirstDeltaClock,
    private readonly log: Logger,
    private readonly limits: SlowConsumerLimits,
  ) {
    const probe = keys.session('\u0000').channel;
    this.channelHead = probe.indexOf('\u0000');
    this.channelTail = probe.length - this.channelHead - 1;
    this.batch = new TurnBatch(stats);
    subscriber.on('smessage', (channel: string, raw: string) => this.deliver(channel, raw));
    this.feed = new LiveFeed((code, reason) => this.sendAway(code, reason));
    // ('close'/'ready' of one connection; '-subscriber'/'subscribersReady' on a Redis Cluster.)
    const lost = () => this.feed.lost();
    subscriber.on('close', lost).on('-subscriber', lost);
    subscriber.on('ready', () => this.feed.back());
    if (subscriber.isCluster) this.watchSlotMoves(subscriber as unknown as Cluster);
  }

  /**
   * A Redis Cluster shard drops the subscriptions of a slot that moves to another shard (it
   * pushes `sunsubscribe`), and ioredis does not subscribe again on the new owner: the sessions
   * of that slot would get no live events. ioredis reports such a push as a node error (a reply
   * no command waited for; the push may also have been taken for the reply of a command in
   * flight, which then shows up so instead). Either way the feed counts as down until the slot
   * map is refreshed; then every socket is sent away, and their sessions subscribe afresh, on
   * the current owners, as they come back.
   */
  private watchSlotMoves(subscriber: Cluster): void {
    subscriber.on('nodeError', (error: Error) => {
      if (!error.message.startsWith('Command queue state error')) return;
      this.log.warn(
        { err: error.message },
        'a shard dropped live-event subscriptions: slot moved?',
      );
      this.resync(subscriber);
    });
    subscriber.on('subscribersReady', () => this.feed.back());
  }

  private resync(subscriber: Cluster): void {
    if (this.feed.isStopped) return;
    this.feed.lost();
    subscriber.refreshSlotsCache((error) => {
      if (error) setTimeout(() => this.resync(subscriber), 1_000).unref();
      else this.feed.back();
    });
  }

  /** Whether this gateway receives its sessions' live events (new sockets wait until it does). */
  get liveFeedUp(): boolean {
    return this.feed.isUp;
  }

  /** The events connection was found silent: it is being replaced, events are missed meanwhile. */
  liveFeedLost(): void {
    this.feed.lost();
  }

  /** Stops its timers (the gateway stops). */
  stop(): void {
    this.feed.stop();
  }

  /** Closes every socket: they may have missed live events, and replay them when back. */
  private sendAway(code: CloseCode, reason: string): void {
    const sockets = this.allSockets();
    if (sockets.length === 0) {
      this.log.info({ code }, 'live events were interrupted; no socket to close');
      return;
    }
    this.stats.error('live_feed_interrupted');
    this.log.warn(
      { sockets: sockets.length, code },
      'live events were interrupted: closing sockets',
    );
    for (const ws of sockets) {
      if (!connOf(ws).closed) ws.end(code, reason);
    }
  }

  /** Registers a socket, and subscribes to its session's events if it is the first here. */
  join(ws: Socket): Joined {
    const { sessionId } = connOf(ws);
    this.socketTotal++;
    const members = this.sessions.get(sessionId);
    if (members === undefined) {
      this.sessions.set(sessionId, ws);
      // Bounded: on a Redis Cluster, an SSUBSCRIBE that meets MOVED (a slot moving) never settles.
      const subscribed: Promise<void> = withTimeout(
        this.subscriber.ssubscribe(this.keys.session(sessionId).channel),
        SUBSCRIBE_TIMEOUT_MS,
        'SSUBSCRIBE',
      ).then(() => {
        if (this.subscribing.get(sessionId) === subscribed) this.subscribing.delete(sessionId);
      });
      // Whoever joins awaits it; this only keeps a failure from counting as unhandled.
      subscribed.catch(ignore);
      this.subscribing.set(sessionId, subscribed);
      return { first: true, subscribed };
    }
    if (Array.isArray(members)) members.push(ws);
    else {
      // Live delivery to the first socket moves to the topic, which both will share.
      if (connOf(members).live) this.subscribe(members);
      this.sessions.set(sessionId, [members, ws]);
    }
    return { first: false, subscribed: this.subscribing.get(sessionId) ?? null };
  }

  /** Unregisters a socket; true when it was the session's last socket on this gateway. */
  leave(ws: Socket, conn: Connection): boolean {
    const { sessionId } = conn;
    const members = this.sessions.get(sessionId);
    if (members === undefined) return true;
    if (Array.isArray(members)) {
      // A new array: a delivery looping over the old one may be what closed this socket.
      const rest = members.filter((m) => m !== ws);
      if (rest.length === members.length) return false;
      this.socketTotal--;
      this.sessions.set(sessionId, rest.length === 1 ? rest[0]! : rest);
      return false;
    }
    if (members !== ws) return false;
    this.socketTotal--;
    this.sessions.delete(sessionId);
    this.subscribing.delete(sessionId);
    this.subscriber.sunsubscribe(this.keys.session(sessionId).channel).catch((error: unknown) => {
      this.stats.error('redis_unsubscribe');
      this.log.warn({ err: error, sessionId }, 'unsubscribe failed');
    });
    return true;
  }

  /** Sends a socket its session's live events from now on (after welcome). */
  goLive(ws: Socket): void {
    const conn = connOf(ws);
    conn.seam = null;
    if (conn.closed || conn.live) return;
    conn.live = true;
    if (Array.isArray(this.sessions.get(conn.sessionId))) this.subscribe(ws);
  }

  private subscribe(ws: Socket): void {
    const conn = connOf(ws);
    if (conn.onTopic) return;
    // uWS sends a subscriber's topic messages before anything else sent to it: the events
    // batched for it this turn go first.
    sendBatched(ws, conn, this.stats);
    ws.subscribe(sessionTopic(conn.sessionId));
    conn.onTopic = true;
  }

  /**
   * Takes a socket off its session's topic. uWS sends a topic's messages at the end of the loop's
   * turn, and a socket that leaves the topic first misses those still pending: 'send' flushes
   * them first (any send does; a ping here), 'drop' leaves them to a replay from the log.
   */
  private unsubscribe(ws: Socket, pending: 'send' | 'drop'): void {
    const conn = connOf(ws);
    if (!conn.onTopic) return;
    if (pending === 'send') ws.ping();
    ws.unsubscribe(sessionTopic(conn.sessionId));
    conn.onTopic = false;
  }

  /**
   * After a replay that ended at `lastSent`: the socket goes live with the first event past it
   * (events up to it may still arrive from Redis, and are dropped for this socket).
   */
  goLiveAfter(ws: Socket, lastSent: string): void {
    const conn = connOf(ws);
    if (conn.closed || conn.live) return;
    conn.seam = lastSent;
  }

  /** Stops live delivery to a socket and buffers its events instead, for a replay. */
  holdBack(ws: Socket): void {
    const conn = connOf(ws);
    // The replay resends from the log what the client has not seen, these included.
    this.unsubscribe(ws, 'drop');
    conn.batched = null;
    conn.live = false;
    conn.seam = null;
    conn.catchingUp = [];
    conn.catchingUpBytes = 0;
    conn.catchUpDropped = false;
    // The replay reads from the log whatever was held back for slowness.
    conn.held = null;
    conn.heldBytes = 0;
  }

  /** The socket's send buffer drained a little: sends held events, live again once all are out. */
  drained(ws: Socket): void {
    const conn = connOf(ws);
    const held = conn.held;
    if (held === null || conn.closed) return;
    let sent = 0;
    while (sent < held.length && ws.getBufferedAmount() < this.limits.slowBytes) {
      const event = held[sent++]!;
      conn.heldBytes -= event.body.length;
      sendRaw(ws, this.stats, withEventId(event.eventId, event.body));
    }
    held.splice(0, sent);
    if (held.length > 0) return;
    conn.held = null;
    conn.heldBytes = 0;
    this.stats.metrics.slowConsumer('caught_up');
    this.goLive(ws);
  }

  /** Sockets held here. */
  get size(): number {
    return this.socketTotal;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  socketsOf(sessionId: string): number {
    const members = this.sessions.get(sessionId);
    return members === undefined ? 0 : Array.isArray(members) ? members.length : 1;
  }

  /** Every socket held here (a copy: `visit` may close sockets). */
  allSockets(): Socket[] {
    const all: Socket[] = [];
    for (const members of this.sessions.values()) {
      if (Array.isArray(members)) all.push(...members);
      else all.push(members);
    }
    return all;
  }

  /** Calls `visit` for every socket held here; `visit` must not close sockets. */
  forEachSocket(visit: (ws: Socket) => void): void {
    for (const members of this.sessions.values()) {
      if (Array.isArray(members)) members.forEach(visit);
      else visit(members);
    }
  }

  private deliver(channel: string, raw: string): void {
    const sessionId = channel.slice(this.channelHead, channel.length - this.channelTail);
    const members = this.sessions.get(sessionId);
    if (members === undefined) return;
    const message = decodeLiveMessage(raw);
    if (!message) {
      this.stats.error('bad_live_message');
      return;
    }
    if (message.kind === 'evict') {
      const ws = Array.isArray(members)
        ? members.find((m) => connOf(m).connectionId === message.connectionId)
        : connOf(members).connectionId === message.connectionId
          ? members
          : undefined;
      if (ws && !connOf(ws).closed) ws.end(message.code, 'replaced by a newer connection');
      return;
    }
    // Its sockets are sent away once the feed is back; they read what follows from the log, and
    // one sent a live event now would resume after it, past the events lost in the gap.
    if (!this.feed.isUp) return;
    for (const { eventId, body } of message.events) {
      // Sending may close a socket (too slow), which changes the session's members.
      const current = this.sessions.get(sessionId);
      if (current === undefined) return;
      this.deliverEvent(sessionId, current, eventId, body);
    }
  }

  private deliverEvent(sessionId: string, members: Members, eventId: string, body: string): void {
    if (body.startsWith(STATUS_PREFIX)) {
      this.stats.sessionState(sessionId, body.includes('"state":"processing"'));
    }
    this.firstDelta.event(sessionId, body);
    const frame = withEventId(eventId, body);
    if (!Array.isArray(members)) {
      this.checkPace(members);
      this.sendOne(members, eventId, body, frame);
      return;
    }
    const topic = sessionTopic(sessionId);
    // Slowness is judged before the publish: a socket leaves the topic before this event is on it.
    members.forEach(this.checkPace);
    this.app.publish(topic, frame);
    let delivered = this.app.numSubscribers(topic);
    for (const ws of members) delivered += this.notLive(ws, eventId, body, frame);
    this.stats.metrics.framesSent(delivered);
  }

  /** An event for a session's only socket here (which may still be on the topic it shared). */
  private sendOne(ws: Socket, eventId: string, body: string, frame: string): void {
    const conn = connOf(ws);
    if (!conn.live) {
      this.stats.metrics.framesSent(this.notLive(ws, eventId, body, frame));
    } else if (conn.onTopic) {
      this.app.publish(sessionTopic(conn.sessionId), frame);
      this.stats.metrics.framesSent(1);
    } else {
      this.batch.add(ws, frame);
    }
  }

  /** A live socket whose send buffer passed the slow mark leaves the topic (see SlowConsumerLimits). */
  private readonly checkPace = (ws: Socket): void => {
    const conn = connOf(ws);
    if (conn.live && ws.getBufferedAmount() > this.limits.slowBytes) this.slowDown(ws, conn);
  };

  private slowDown(ws: Socket, conn: Connection): void {
    this.unsubscribe(ws, 'send');
    sendBatched(ws, conn, this.stats);
    conn.live = false;
    conn.held = [];
    conn.heldBytes = 0;
    this.stats.metrics.slowConsumer('held');
  }

  private hold(ws: Socket, conn: Connection, eventId: string, body: string): number {
    const held = conn.held!;
    const last = held.at(-1);
    const merged = last && mergeDeltas(last.body, body);
    if (last && merged !== undefined) {
      conn.heldBytes += merged.length - last.body.length;
      held[held.length - 1] = { eventId, body: merged };
      this.stats.metrics.slowConsumer('merged');
    } else {
      conn.heldBytes += body.length;
      held.push({ eventId, body });
    }
    if (conn.heldBytes + ws.getBufferedAmount() > this.limits.maxBytes) {
      this.stats.metrics.slowConsumer('closed');
      conn.held = null;
      conn.heldBytes = 0;
      ws.end(CloseCode.tooSlow, 'too slow: reconnect with your lastEventId');
    }
    return 0; // counted as sent when it goes out
  }

  /**
   * An event for a socket that is not live: held (merged) while it reads too slowly;
   * held while it replays; after its replay, dropped if replayed already, else sent (then the
   * socket is live). 1 if it was held for a replay.
   */
  private notLive(ws: Socket, eventId: string, body: string, frame: string): number {
    const conn = connOf(ws);
    if (conn.live) return 0;
    if (conn.held) return this.hold(ws, conn, eventId, body);
    if (conn.catchingUp) {
      // A replay waiting on a socket that reads nothing must not hold a busy session's events
      // without bound: they are in the log, so the replay reads them again from there.
      if (
        conn.catchingUp.length >= CATCH_UP_CAP ||
        conn.catchingUpBytes + frame.length > CATCH_UP_BYTES
      ) {
        conn.catchingUp.length = 0;
        conn.catchingUpBytes = 0;
        conn.catchUpDropped = true;
        this.stats.metrics.slowConsumer('catch_up_dropped');
      }
      conn.catchingUp.push({ eventId, frame });
      conn.catchingUpBytes += frame.length;
      return 1;
    }
    if (conn.seam === null || compareEventIds(eventId, conn.seam) <= 0) return 0;
    sendRaw(ws, this.stats, frame);
    this.goLive(ws);
    return 0;
  }
}
