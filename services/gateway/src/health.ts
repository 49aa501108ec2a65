import type { ClusterView, Figures } from '@chorus/state';
import type { GatewayContext } from './gateway-context.js';
import { withTimeout } from './with-timeout.js';

/** How often the gateway refreshes the cluster part (`refresh`, from its loop). */
export const HEALTH_REFRESH_MS = 1_000;
const REDIS_PROBE_TIMEOUT_MS = 1_000;

interface ClusterSnapshot {
  lifetime: Figures;
  redis: { status: 'up' | 'down'; latency_ms: number | null };
  view: ClusterView;
  queue: { waiting: number; active: number; delayed: number; failed: number };
  graph: { nodes: number; edges: number };
}

const EMPTY: ClusterSnapshot = {
  lifetime: {},
  redis: { status: 'down', latency_ms: null },
  view: { gateways: [], workers: [], processingSessions: 0 },
  queue: { waiting: 0, active: 0, delayed: 0, failed: 0 },
  graph: { nodes: 0, edges: 0 },
};

const sum = (view: ClusterView['gateways'], figure: string) =>
  view.reduce((total, member) => total + (member.figures[figure] ?? 0), 0);

/**
 * Assembles /health: this replica's figures live, the cluster's from Redis as a background loop
 * last read them (every second), so that a request never waits for Redis. Redis counts as down
 * as soon as the command connection is not ready, the live-event subscription is interrupted, or
 * the last probe failed.
 */
export class HealthReporter {
  private snapshot: ClusterSnapshot = EMPTY;
  private firstRead: Promise<ClusterSnapshot> | null = null;
  private firstDone = false;
  private inFlight: Promise<ClusterSnapshot> | null = null;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly startedAt: number,
    private readonly uwsNative: boolean,
  ) {}

  async report(): Promise<{ healthy: boolean; body: Record<string, unknown> }> {
    const cluster = await this.cluster();
    const { stats, settings } = this.ctx;
    const now = Date.now();
    const uptime = (now - this.startedAt) / 1000;
    const commandsUp = this.commandsUp(cluster);
    const feedUp = this.ctx.fanout.liveFeedUp;
    const redisUp = commandsUp && feedUp;
    const degraded = !this.uwsNative || this.ctx.draining || cluster.view.workers.length === 0;
    const agents = Math.max(0, ...cluster.view.workers.map((w) => w.figures.agents ?? 0));
    const body = {
      status: !redisUp ? 'unhealthy' : degraded ? 'degraded' : 'healthy',
      service: 'chorus-gateway',
      version: settings.version,
      gatewayId: settings.gatewayId,
      timestamp: now / 1000,
      uptime_seconds: Math.round(uptime),
      uptime_hours: Math.round((uptime / 3600) * 100) / 100,
      websocket_metrics: {
        active_connections: stats.activeConnections,
        unique_browser_sessions: stats.uniqueSessions,
        processing_connections: stats.processingConnections,
        pending_swaps: 0,
        total_connections_lifetime: stats.totalConnections,
        total_errors: stats.totalErrors,
        total_messages: stats.totalMessages,
        avg_messages_per_connection:
          stats.totalConnections === 0
            ? 0
            : Math.round((stats.totalMessages / stats.totalConnections) * 100) / 100,
      },
      cluster: {
        gateways: cluster.view.gateways.length,
        workers: cluster.view.workers.length,
        active_connections: sum(cluster.view.gateways, 'active_connections'),
        unique_browser_sessions: sum(cluster.view.gateways, 'unique_browser_sessions'),
        processing_sessions: cluster.view.processingSessions,
        queue: cluster.queue,
        total_connections_lifetime: cluster.lifetime.connections ?? 0,
        total_messages: cluster.lifetime.messages ?? 0,
        total_errors: cluster.lifetime.errors ?? 0,
      },
      knowledge_graph: cluster.graph,
      agents,
      redis: {
        ...(commandsUp ? cluster.redis : { status: 'down', latency_ms: null }),
        live_events: feedUp ? 'up' : 'down',
      },
      uws: { native: this.uwsNative },
      draining: this.ctx.draining,
    };
    return { healthy: redisUp, body };
  }

  /** True when Redis answered recently and live events arrive; used by /readyz. */
  async redisUp(): Promise<boolean> {
    return this.commandsUp(await this.cluster()) && this.ctx.fanout.liveFeedUp;
  }

  /** Reads the cluster part again (once, however many ask at the same moment). */
  async refresh(): Promise<void> {
    await this.latest();
  }

  private latest(): Promise<ClusterSnapshot> {
    this.inFlight ??= this.fetch().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** The command connection is ready and the last probe answered. */
  private commandsUp(cluster: ClusterSnapshot): boolean {
    return cluster.redis.status === 'up' && this.ctx.redis.status === 'ready';
  }

  /**
   * The last snapshot. Only the first request waits for Redis (a snapshot read for it, however
   * soon after start-up it comes); the loop keeps it fresh from then on.
   */
  private async cluster(): Promise<ClusterSnapshot> {
    if (this.firstDone) return this.snapshot;
    this.firstRead ??= this.freshOne().finally(() => {
      this.firstDone = true;
    });
    return this.firstRead;
  }

  /** A snapshot read after now: the one in flight may have started earlier. */
  private async freshOne(): Promise<ClusterSnapshot> {
    if (this.inFlight) await this.inFlight;
    return this.latest();
  }

  private async fetch(): Promise<ClusterSnapshot> {
    const { redis, cluster, queue } = this.ctx;
    const started = performance.now();
    try {
      await withTimeout(redis.ping(), REDIS_PROBE_TIMEOUT_MS, 'Redis PING');
      const latency = Math.round((performance.now() - started) * 100) / 100;
      const [view, counts, graph, lifetime] = await withTimeout(
        Promise.all([
          cluster.view(),
          queue.getJobCounts('wait', 'active', 'delayed', 'failed'),
          this.ctx.graph.counts(),
          cluster.counters(),
        ]),
        REDIS_PROBE_TIMEOUT_MS * 2,
        'cluster snapshot',
      );
      this.snapshot = {
        lifetime,
        redis: { status: 'up', latency_ms: latency },
        view,
        queue: {
          waiting: counts.wait ?? 0,
          active: counts.active ?? 0,
          delayed: counts.delayed ?? 0,
          failed: counts.failed ?? 0,
        },
        graph,
      };
    } catch (error) {
      this.ctx.stats.error('health_probe');
      this.ctx.log.warn({ err: error }, 'health probe failed');
      this.snapshot = { ...this.snapshot, redis: { status: 'down', latency_ms: null } };
    }
    return this.snapshot;
  }
}
