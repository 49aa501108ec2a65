import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';
import { runScript } from './scripts.js';

export interface StoredEvent {
  eventId: string;
  /** The encoded body, without eventId (see `withEventId`). */
  body: string;
}

const toStored = ([eventId, fields]: [string, string[]]): StoredEvent => ({
  eventId,
  body: fields[1] ?? '{}',
});

/** The per-session event log: a bounded stream plus live publication. */
export class SessionEvents {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly maxLen: number,
  ) {}

  /**
   * Appends events already encoded (`encodeEventBody`), in order, in one step for the holder of
   * `fence`: all of them, or none (null) when that lease is lost.
   */
  async appendManyAsLeaseHolder(
    sessionId: string,
    fence: number,
    encodedBodies: string[],
  ): Promise<string[] | null> {
    const k = this.keys.session(sessionId);
    const ids = await runScript(
      this.redis,
      'appendEvents',
      [k.lease, k.events, k.channel],
      [fence, this.maxLen, ...encodedBodies],
    );
    return Array.isArray(ids) ? (ids as string[]) : null;
  }

  /** Events strictly after `afterId`, oldest first, at most `count`. */
  async readAfter(sessionId: string, afterId: string, count: number): Promise<StoredEvent[]> {
    const entries = await this.redis.xrange(
      this.keys.session(sessionId).events,
      `(${afterId}`,
      '+',
      'COUNT',
      count,
    );
    return entries.map(toStored);
  }

  /**
   * Events strictly after `afterId`, as readAfter, or null when the log no longer holds `afterId`
   * itself (trimmed since it was read): the events right after it may be gone too.
   */
  async readAfterKept(
    sessionId: string,
    afterId: string,
    count: number,
  ): Promise<StoredEvent[] | null> {
    const entries = await this.redis.xrange(
      this.keys.session(sessionId).events,
      afterId,
      '+',
      'COUNT',
      count + 1,
    );
    if (entries[0]?.[0] !== afterId) return null;
    return entries.slice(1).map(toStored);
  }

  /** The oldest eventId still retained, or null for an empty log. */
  async oldestEventId(sessionId: string): Promise<string | null> {
    const [first] = await this.redis.xrange(
      this.keys.session(sessionId).events,
      '-',
      '+',
      'COUNT',
      1,
    );
    return first?.[0] ?? null;
  }
}
