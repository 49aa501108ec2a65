import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';
import { runScript } from './scripts.js';

export interface SocketEntry {
  connectionId: string;
  gatewayId: string;
  /**
   * When Redis registered it, in µs of Redis's clock: one clock for every replica, so that the
   * oldest socket is the one that joined first, whatever the gateways' clocks say.
   */
  openedAt: number;
}

/** One event of a session's log, as read for a replay. */
export interface ReplayEvent {
  eventId: string;
  /** The encoded body, without eventId. */
  body: string;
}

export interface JoinRequest {
  entry: Omit<SocketEntry, 'openedAt'>;
  /** Above this many sockets on live gateways, the oldest are named for eviction; 0: no cap. */
  maxSockets: number;
  /** Also read the first replay page after this eventId (it must be a valid eventId). */
  replayAfter?: string;
  /** Events per replay page. */
  pageSize?: number;
}

export interface JoinResult {
  /** The session was known (created earlier and not expired). */
  existed: boolean;
  /** Sockets to close for the cap: the oldest ones on live gateways, beyond `maxSockets`. */
  evict: SocketEntry[];
  /** With `replayAfter`: it is older than every retained event; `page` is the whole log's start. */
  reset: boolean;
  /** With `replayAfter`: the first events to replay, oldest first, at most `pageSize`. */
  page: ReplayEvent[];
}

/** Sessions and the session-to-socket map: which connection of which gateway serves a session. */
export class SessionDirectory {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly ttlSeconds: number,
  ) {}

  /**
   * Everything a new socket needs from its session in one script on the session's slot:
   * record the session (new or known), add the socket, apply the per-session cap and read the
   * first replay page. The gateway must list
   * the session under itself (`listUnderGateway`) no later than this, for its reaper.
   */
  async join(sessionId: string, request: JoinRequest, now = Date.now()): Promise<JoinResult> {
    const k = this.keys.session(sessionId);
    const { entry } = request;
    const [existed, flat, reset, rawPage] = (await runScript(
      this.redis,
      'joinSession',
      [k.meta, k.sockets, k.events],
      [
        now,
        this.ttlSeconds,
        entry.connectionId,
        entry.gatewayId,
        request.maxSockets,
        request.replayAfter ?? '',
        request.pageSize ?? 200,
      ],
    )) as [number, string[], number, string[]];
    const page: ReplayEvent[] = [];
    for (let i = 0; i + 1 < rawPage.length; i += 2) {
      page.push({ eventId: rawPage[i]!, body: rawPage[i + 1]! });
    }
    let evict: SocketEntry[] = [];
    if (flat.length > 0) {
      // Over the cap counting every entry: count again without the sockets of dead gateways.
      const live = new Set(await this.redis.zrangebyscore(this.keys.gateways, now, '+inf'));
      live.add(entry.gatewayId);
      const sockets = parseSockets(flat).filter((s) => live.has(s.gatewayId));
      evict = sockets.slice(0, Math.max(0, sockets.length - request.maxSockets));
    }
    return { existed: existed === 1, evict, reset: reset === 1, page };
  }

  /** Lists sessions under a gateway, so that their sockets are reaped if that gateway dies. */
  async listUnderGateway(sessionIds: string[], gatewayId: string): Promise<void> {
    if (sessionIds.length > 0) {
      await this.redis.sadd(this.keys.gatewaySessions(gatewayId), ...sessionIds);
    }
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
    return sortSockets(
      Object.entries(raw).map(([connectionId, value]) => socketEntry(connectionId, value)),
    );
  }
}

function socketEntry(connectionId: string, value: string): SocketEntry {
  const [gatewayId = '', openedAt = '0'] = value.split('|');
  return { connectionId, gatewayId, openedAt: Number(openedAt) };
}

/** Oldest first; connection ids break ties. */
function sortSockets(sockets: SocketEntry[]): SocketEntry[] {
  return sockets.sort(
    (a, b) => a.openedAt - b.openedAt || a.connectionId.localeCompare(b.connectionId),
  );
}

/** A flat HGETALL reply (`connectionId, value, ...`) as entries, oldest first. */
function parseSockets(flat: string[]): SocketEntry[] {
  const sockets: SocketEntry[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) sockets.push(socketEntry(flat[i]!, flat[i + 1]!));
  return sortSockets(sockets);
}
