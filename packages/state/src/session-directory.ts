import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';

export interface SocketEntry {
  connectionId: string;
  gatewayId: string;
  openedAt: number;
}

/** Sessions and the session-to-socket map: which connection of which gateway serves a session. */
export class SessionDirectory {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly ttlSeconds: number,
  ) {}

  /** Records the session if it is new; true when it existed already. */
  async ensure(sessionId: string, now = Date.now()): Promise<boolean> {
    const k = this.keys.session(sessionId);
    const [[, created]] = (await this.redis
      .multi()
      .hsetnx(k.meta, 'created', now)
      .hset(k.meta, 'lastSeen', now)
      .expire(k.meta, this.ttlSeconds)
      .exec()) as [[Error | null, number]];
    return created === 0;
  }

  /**
   * Adds a socket and returns the session's sockets on gateways whose heartbeat is current,
   * oldest first. Sockets of a dead gateway are skipped here and removed by its reaper.
   */
  async addSocket(sessionId: string, entry: SocketEntry, now = Date.now()): Promise<SocketEntry[]> {
    const key = this.keys.session(sessionId).sockets;
    const [, , live] = await Promise.all([
      this.redis
        .multi()
        .hset(key, entry.connectionId, `${entry.gatewayId}|${entry.openedAt}`)
        .expire(key, this.ttlSeconds)
        .exec(),
      this.redis.sadd(this.keys.gatewaySessions(entry.gatewayId), sessionId),
      this.redis.zrangebyscore(this.keys.gateways, now, '+inf'),
    ]);
    const liveGateways = new Set([...live, entry.gatewayId]);
    return (await this.sockets(sessionId)).filter((s) => liveGateways.has(s.gatewayId));
  }

  /** Removes a socket; `lastHere` says the gateway holds no other socket of the session. */
  async removeSocket(
    sessionId: string,
    connectionId: string,
    gateway: { id: string; lastHere: boolean },
  ): Promise<void> {
    await Promise.all([
      this.redis.hdel(this.keys.session(sessionId).sockets, connectionId),
      gateway.lastHere ? this.redis.srem(this.keys.gatewaySessions(gateway.id), sessionId) : null,
    ]);
  }

  async socketCount(sessionId: string): Promise<number> {
    return this.redis.hlen(this.keys.session(sessionId).sockets);
  }

  /** Removes every socket a dead gateway left in the session-to-socket map. */
  async reapGateway(gatewayId: string): Promise<number> {
    const setKey = this.keys.gatewaySessions(gatewayId);
    let removed = 0;
    let cursor = '0';
    do {
      const [next, sessionIds] = await this.redis.sscan(setKey, cursor, 'COUNT', 500);
      cursor = next;
      for (const sessionId of sessionIds) {
        const gone = (await this.sockets(sessionId)).filter((s) => s.gatewayId === gatewayId);
        if (gone.length > 0) {
          removed += await this.redis.hdel(
            this.keys.session(sessionId).sockets,
            ...gone.map((s) => s.connectionId),
          );
        }
      }
    } while (cursor !== '0');
    await this.redis.del(setKey);
    return removed;
  }

  async sockets(sessionId: string): Promise<SocketEntry[]> {
    const raw = await this.redis.hgetall(this.keys.session(sessionId).sockets);
    return Object.entries(raw)
      .map(([connectionId, value]) => {
        const [gatewayId = '', openedAt = '0'] = value.split('|');
        return { connectionId, gatewayId, openedAt: Number(openedAt) };
      })
      .sort((a, b) => a.openedAt - b.openedAt || a.connectionId.localeCompare(b.connectionId));
  }
}
