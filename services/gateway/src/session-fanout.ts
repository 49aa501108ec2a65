import { withEventId } from '@chorus/protocol';
import { decodeLiveMessage, type KeySchema, type Redis } from '@chorus/state';
import type { Logger } from '@chorus/observability';
import { sessionTopic, type Connection, type Socket } from './connection.js';
import type { FirstDeltaClock } from './first-delta-clock.js';
import type { ReplicaStats } from './replica-stats.js';
import type { TemplatedApp } from './uws.js';

interface SessionEntry {
  sessionId: string;
  sockets: Set<Socket>;
  subscribed: Promise<void>;
}

const STATUS_PREFIX = '{"type":"status"';

/**
 * Live delivery inside one gateway: one sharded Redis subscription (SSUBSCRIBE, so that on Redis
 * Cluster it goes to the session's shard only) per session that has a socket here,
 * each event serialised once and sent to the session's uWS topic.
 */
export class SessionFanout {
  private readonly sessions = new Map<string, SessionEntry>();
  private readonly byChannel = new Map<string, SessionEntry>();
  private readonly byConnectionId = new Map<string, Socket>();

  constructor(
    private readonly app: TemplatedApp,
    private readonly subscriber: Redis,
    private readonly keys: KeySchema,
    private readonly stats: ReplicaStats,
    private readonly firstDelta: FirstDeltaClock,
    private readonly log: Logger,
  ) {
    subscriber.on('smessage', (channel: string, raw: string) => this.deliver(channel, raw));
  }

  /** Registers a socket; resolves once the session's events reach this gateway. */
  join(ws: Socket): Promise<void> {
    const conn = ws.getUserData();
    this.byConnectionId.set(conn.connectionId, ws);
    let entry = this.sessions.get(conn.sessionId);
    if (!entry) {
      const channel = this.keys.session(conn.sessionId).channel;
      entry = {
        sessionId: conn.sessionId,
        sockets: new Set(),
        subscribed: this.subscriber.ssubscribe(channel).then(() => undefined),
      };
      this.sessions.set(conn.sessionId, entry);
      this.byChannel.set(channel, entry);
    }
    entry.sockets.add(ws);
    return entry.subscribed;
  }

  /** Unregisters a socket; true when it was the session's last socket on this gateway. */
  leave(ws: Socket, conn: Connection): boolean {
    this.byConnectionId.delete(conn.connectionId);
    const entry = this.sessions.get(conn.sessionId);
    if (!entry) return true;
    entry.sockets.delete(ws);
    if (entry.sockets.size > 0) return false;
    const channel = this.keys.session(conn.sessionId).channel;
    this.sessions.delete(conn.sessionId);
    this.byChannel.delete(channel);
    this.subscriber.sunsubscribe(channel).catch((error: unknown) => {
      this.stats.error('redis_unsubscribe');
      this.log.warn({ err: error, sessionId: conn.sessionId }, 'unsubscribe failed');
    });
    return true;
  }

  /** Sends a socket its session's live events from now on (after welcome or replay). */
  goLive(ws: Socket): void {
    const conn = ws.getUserData();
    if (conn.closed || conn.live) return;
    ws.subscribe(sessionTopic(conn.sessionId));
    conn.live = true;
  }

  /** Stops live delivery to a socket and buffers its events instead, for a replay. */
  holdBack(ws: Socket): void {
    const conn = ws.getUserData();
    if (conn.live) ws.unsubscribe(sessionTopic(conn.sessionId));
    conn.live = false;
    conn.catchingUp = [];
  }

  /** A socket connected to this gateway, if it is here. */
  socket(connectionId: string): Socket | undefined {
    return this.byConnectionId.get(connectionId);
  }

  private deliver(channel: string, raw: string): void {
    const entry = this.byChannel.get(channel);
    if (!entry) return;
    const message = decodeLiveMessage(raw);
    if (!message) {
      this.stats.error('bad_live_message');
      return;
    }
    if (message.kind === 'evict') {
      const ws = this.byConnectionId.get(message.connectionId);
      if (ws && !ws.getUserData().closed) ws.end(message.code, 'replaced by a newer connection');
      return;
    }
    if (message.body.startsWith(STATUS_PREFIX)) {
      this.stats.sessionState(entry.sessionId, message.body.includes('"state":"processing"'));
    }
    this.firstDelta.event(entry.sessionId, message.body);
    const frame = withEventId(message.eventId, message.body);
    this.app.publish(sessionTopic(entry.sessionId), frame);
    let delivered = this.app.numSubscribers(sessionTopic(entry.sessionId));
    for (const ws of entry.sockets) {
      const conn = ws.getUserData();
      if (conn.catchingUp) {
        conn.catchingUp.push({ eventId: message.eventId, frame });
        delivered++;
      }
    }
    this.stats.metrics.framesSent(delivered);
  }
}
