import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';

const HOUR_MS = 3_600_000;

/** Model tokens a session spent in the current clock hour, shared by every worker. */
export class TokenBudget {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    /** Tokens a session may spend per hour; 0 for no limit. */
    readonly perHour: number,
  ) {}

  async exhausted(sessionId: string, now = Date.now()): Promise<boolean> {
    if (this.perHour === 0) return false;
    return Number(await this.redis.get(this.key(sessionId, now))) >= this.perHour;
  }

  async spend(sessionId: string, tokens: number, now = Date.now()): Promise<void> {
    if (this.perHour === 0 || tokens <= 0) return;
    const key = this.key(sessionId, now);
    await this.redis
      .multi()
      .incrby(key, tokens)
      .pexpire(key, 2 * HOUR_MS)
      .exec();
  }

  private key(sessionId: string, now: number): string {
    return this.keys.session(sessionId).tokensInHour(Math.floor(now / HOUR_MS));
  }
}
