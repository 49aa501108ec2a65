/**
 * Every Redis key and channel of Chorus, and nothing else builds one.
 * A session's keys share the hash tag `{s:<id>}` so that Redis Cluster keeps them on one slot
 * and Lua scripts may touch several of them at once.
 */
export interface SessionKeys {
  /** hash: created, lastSeen */
  meta: string;
  /** hash: connectionId -> `<gatewayId>|<openedAt, µs of Redis's clock>` */
  sockets: string;
  /** stream: the session's events; entry ids are the protocol's eventIds */
  events: string;
  /** shard pub/sub channel (SPUBLISH): `<eventId>\n<body>` lines for events, `!<json>` for control messages */
  channel: string;
  /** hash: chat id -> JSON message record (idempotency and state) */
  messages: string;
  /** list: chat ids waiting for an answer, in ack order */
  inbox: string;
  /** string: the fencing token of the worker that holds the processing lease (PX) */
  lease: string;
  /** counter: last fencing token handed out */
  fence: string;
  /** list: JSON conversation turns, oldest first */
  history: string;
  /** set: chat ids whose answer the client asked to stop */
  cancels: string;
  /** hash: the session's message token bucket (tokens, ts) */
  rateLimit: string;
  /** counter: model tokens spent in one clock hour (hours since the epoch) */
  tokensInHour: (hour: number) => string;
}

export class KeySchema {
  constructor(readonly prefix: string) {}

  session(sessionId: string): SessionKeys {
    const tag = `${this.prefix}:{s:${sessionId}}`;
    return {
      meta: `${tag}:meta`,
      sockets: `${tag}:sockets`,
      events: `${tag}:events`,
      channel: `${tag}:live`,
      messages: `${tag}:messages`,
      inbox: `${tag}:inbox`,
      lease: `${tag}:lease`,
      fence: `${tag}:fence`,
      history: `${tag}:history`,
      cancels: `${tag}:cancels`,
      rateLimit: `${tag}:ratelimit`,
      tokensInHour: (hour) => `${tag}:tokens:${hour}`,
    };
  }

  /** zset: gatewayId -> heartbeat expiry (ms) */
  // Membership keys share the `{cluster}` hash tag, so that a heartbeat is one MULTI on one slot.
  get gateways(): string {
    return `${this.prefix}:{cluster}:gateways`;
  }
  /** hash: a gateway's own figures, expiring with its heartbeat */
  gatewayStats(gatewayId: string): string {
    return `${this.prefix}:{cluster}:gateway:${gatewayId}`;
  }
  /** zset: workerId -> heartbeat expiry (ms) */
  get workers(): string {
    return `${this.prefix}:{cluster}:workers`;
  }
  workerStats(workerId: string): string {
    return `${this.prefix}:{cluster}:worker:${workerId}`;
  }
  /** pub/sub channel: `<sessionId>\n<chat id>` when a client cancels; every worker listens */
  get cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }
  /** set: sessions that have (or had) sockets on a gateway, for reaping after it dies */
  gatewaySessions(gatewayId: string): string {
    return `${this.prefix}:gateway:${gatewayId}:sessions`;
  }
  /** A client address's connect-rate bucket and its open connections, per gateway instance. */
  client(address: string): { connectBucket: string; openConnections: string } {
    const tag = `${this.prefix}:{ip:${address}}`;
    return { connectBucket: `${tag}:connect`, openConnections: `${tag}:open` };
  }
  /** zset: sessionId -> lease expiry (ms); a count, not a lock */
  get processing(): string {
    return `${this.prefix}:processing`;
  }
  /** hash: lifetime counters of the whole cluster */
  get stats(): string {
    return `${this.prefix}:stats`;
  }
  get graph(): { nodes: string; edges: string; version: string } {
    const tag = `${this.prefix}:{graph}`;
    return { nodes: `${tag}:nodes`, edges: `${tag}:edges`, version: `${tag}:version` };
  }
  /** BullMQ's prefix: one hash tag for all of a queue's keys. */
  get queuePrefix(): string {
    return `{${this.prefix}:bull}`;
  }
}

export const CHAT_QUEUE = 'chat';
