import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';
import { runScript } from './scripts.js';

/**
 * The per-session processing flag, as a lease with a fencing token: it expires on its own when
 * its holder dies, and a holder that lost it can no longer append events (see append-events).
 */
export class SessionLease {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly ttlMs: number,
  ) {}

  /** The fencing token, or null when another worker holds the lease or nothing waits. */
  async acquire(sessionId: string): Promise<number | null> {
    const k = this.keys.session(sessionId);
    const fence = await runScript(
      this.redis,
      'acquireLease',
      [k.lease, k.fence, k.inbox],
      [this.ttlMs],
    );
    if (typeof fence !== 'number') return null;
    await this.track(sessionId);
    return fence;
  }

  async renew(sessionId: string, fence: number): Promise<boolean> {
    const renewed = await runScript(
      this.redis,
      'renewLease',
      [this.keys.session(sessionId).lease],
      [fence, this.ttlMs],
    );
    if (renewed === 1) await this.track(sessionId);
    return renewed === 1;
  }

  async release(sessionId: string, fence: number): Promise<void> {
    await runScript(this.redis, 'releaseLease', [this.keys.session(sessionId).lease], [fence]);
    await this.untrack(sessionId);
  }

  /** Drops the session from the cluster-wide processing count (the lease itself is gone). */
  async untrack(sessionId: string): Promise<void> {
    await this.redis.zrem(this.keys.processing, sessionId);
  }

  /** Counts the session in the cluster-wide processing count, for one TTL (renewals extend it). */
  async track(sessionId: string): Promise<void> {
    await this.redis.zadd(this.keys.processing, Date.now() + this.ttlMs, sessionId);
  }
}
