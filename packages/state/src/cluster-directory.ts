import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';

export type Figures = Record<string, number>;

export interface MemberView {
  id: string;
  figures: Figures;
}

export interface ClusterView {
  gateways: MemberView[];
  workers: MemberView[];
  processingSessions: number;
}

/**
 * Live gateways and workers, from heartbeats that expire: a member that dies leaves every count
 * within one heartbeat TTL. Also holds the cluster's lifetime counters.
 */
export class ClusterDirectory {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
  ) {}

  async heartbeat(
    role: 'gateway' | 'worker',
    id: string,
    figures: Figures,
    ttlMs: number,
  ): Promise<void> {
    const [set, stats] = this.memberKeys(role, id);
    const step = this.redis
      .multi()
      .zadd(set, Date.now() + ttlMs, id)
      .del(stats);
    if (Object.keys(figures).length > 0) step.hset(stats, figures).pexpire(stats, ttlMs);
    await step.exec();
  }

  async leave(role: 'gateway' | 'worker', id: string): Promise<void> {
    const [set, stats] = this.memberKeys(role, id);
    await this.redis.multi().zrem(set, id).del(stats).exec();
  }

  async liveIds(role: 'gateway' | 'worker', now = Date.now()): Promise<string[]> {
    return this.redis.zrangebyscore(this.memberKeys(role, '')[0], now, '+inf');
  }

  /** Members whose heartbeat lapsed and that nobody has forgotten yet. */
  async expiredIds(role: 'gateway' | 'worker', now = Date.now()): Promise<string[]> {
    return this.redis.zrangebyscore(this.memberKeys(role, '')[0], '-inf', `(${now}`);
  }

  /** Drops a dead member for good, once whatever it left behind is cleaned up. */
  async forget(role: 'gateway' | 'worker', id: string): Promise<void> {
    await this.redis.zrem(this.memberKeys(role, '')[0], id);
  }

  /** Live members with their figures. */
  async live(role: 'gateway' | 'worker', now = Date.now()): Promise<MemberView[]> {
    return this.figuresOf(role, await this.liveIds(role, now));
  }

  async view(now = Date.now()): Promise<ClusterView> {
    // Expired gateways stay listed until reaped (see expiredIds); workers have nothing to reap.
    await Promise.all([
      this.redis.zremrangebyscore(this.keys.workers, '-inf', now),
      this.redis.zremrangebyscore(this.keys.processing, '-inf', now),
    ]);
    const [gatewayIds, workerIds, processingSessions] = await Promise.all([
      this.liveIds('gateway', now),
      this.liveIds('worker', now),
      this.redis.zcard(this.keys.processing),
    ]);
    const [gateways, workers] = await Promise.all([
      this.figuresOf('gateway', gatewayIds),
      this.figuresOf('worker', workerIds),
    ]);
    return { gateways, workers, processingSessions };
  }

  async incrementCounters(counters: Figures): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const [field, by] of Object.entries(counters))
      if (by !== 0) pipeline.hincrby(this.keys.stats, field, by);
    await pipeline.exec();
  }

  async counters(): Promise<Figures> {
    const raw = await this.redis.hgetall(this.keys.stats);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  private memberKeys(role: 'gateway' | 'worker', id: string): [string, string] {
    return role === 'gateway'
      ? [this.keys.gateways, this.keys.gatewayStats(id)]
      : [this.keys.workers, this.keys.workerStats(id)];
  }

  private async figuresOf(role: 'gateway' | 'worker', ids: string[]): Promise<MemberView[]> {
    const all = await Promise.all(
      ids.map((id) => this.redis.hgetall(this.memberKeys(role, id)[1])),
    );
    return ids.map((id, i) => ({
      id,
      figures: Object.fromEntries(Object.entries(all[i] ?? {}).map(([k, v]) => [k, Number(v)])),
    }));
  }
}
