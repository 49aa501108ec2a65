import { readFileSync } from 'node:fs';
import type { GatewayConfig } from '@chorus/config';
import { createRegistry, GatewayMetrics, startLoop, type Logger } from '@chorus/observability';
import { CloseCode } from '@chorus/protocol';
import {
  ClientLimits,
  ClusterDirectory,
  createChatQueue,
  redisConnector,
  unsupportedRedis,
  GraphStore,
  KeySchema,
  MessageInbox,
  SessionDirectory,
  SessionEvents,
  SUBSCRIBER_PING_MS,
  SubscriberWatch,
} from '@chorus/state';

import { clock, connOf, TICK_MS, type Socket } from './connection.js';
import type { GatewayContext } from './gateway-context.js';
import { FirstDeltaClock } from './first-delta-clock.js';
import { HEALTH_REFRESH_MS, HealthReporter } from './health.js';
import { loadIndexHtml, registerHttpRoutes } from './http-routes.js';
import { ReplicaStats } from './replica-stats.js';
import { SessionFanout } from './session-fanout.js';
import { SessionLister } from './session-lister.js';
import { SessionTokens } from './session-token.js';
import { ensurePortFree } from './port-check.js';
import { uws, uwsNative, type us_listen_socket } from './uws.js';
import { wsBehavior } from './ws-behavior.js';

const HEARTBEAT_INTERVAL_MS = 5_000;
const HEARTBEAT_TTL_MS = 15_000;
/** Listen sockets on the gateway's port, each with its own accept backlog (see below). */
const LISTEN_SOCKETS = 8;

export const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

export interface RunningGateway {
  port: number;
  /** Drains and stops; safe to call more than once. */
  stop(): Promise<void>;
}

/** Builds a gateway from its configuration and starts listening. */
export async function startGateway(config: GatewayConfig, log: Logger): Promise<RunningGateway> {
  const startedAt = Date.now();
  if (!uwsNative) {
    log.error(
      'uWebSockets.js native binary did not load: running on its slow ws fallback (see /health uws.native)',
    );
  }
  const keys = new KeySchema(config.KEY_PREFIX);
  const connect = redisConnector(config.REDIS_URL, config.GATEWAY_ID, (role, error) =>
    log.warn({ err: error.message, role }, 'redis connection error'),
  );
  const redis = connect('commands');
  const subscriber = connect('events', { blocking: true });
  const queueConnection = connect('queue');
  void unsupportedRedis(redis).then((problem) => {
    if (!problem) return;
    log.fatal(problem);
    process.exit(1);
  });
  const registry = createRegistry('gateway', config.GATEWAY_ID);
  const metrics = new GatewayMetrics(registry);
  const stats = new ReplicaStats(metrics);
  const firstDelta = new FirstDeltaClock(metrics);
  const app = uws.App();

  const directory = new SessionDirectory(redis, keys, config.SESSION_TTL_SECONDS);
  const ctx: GatewayContext = {
    settings: {
      gatewayId: config.GATEWAY_ID,
      version: VERSION,
      heartbeatMs: config.HEARTBEAT_MS,
      maxMessageBytes: config.MAX_MESSAGE_BYTES,
      maxFrameBytes: config.MAX_FRAME_BYTES,
      maxBackpressureBytes: config.MAX_BACKPRESSURE_BYTES,
      maxSocketsPerSession: config.MAX_SOCKETS_PER_SESSION,
      allowedOrigins: config.ALLOWED_ORIGINS,
      trustProxy: config.TRUST_PROXY,
      instance: `${config.GATEWAY_ID}#${startedAt}`,
    },
    log,
    redis,
    keys,
    tokens: new SessionTokens(config.SESSION_SECRET),
    directory,
    lister: new SessionLister(directory, config.GATEWAY_ID),
    inbox: new MessageInbox(redis, keys, {
      eventsMaxLen: config.EVENTS_MAXLEN,
      sessionTtlSeconds: config.SESSION_TTL_SECONDS,
      historyMaxEntries: 0,
      messageBurst: config.CHAT_BURST,
      messageRefillMs: 60_000 / config.CHAT_RATE_PER_MINUTE,
    }),
    events: new SessionEvents(redis, keys, config.EVENTS_MAXLEN),
    cluster: new ClusterDirectory(redis, keys),
    clientLimits: new ClientLimits(redis, keys, {
      connectBurst: config.CONNECT_BURST_PER_IP,
      connectRefillMs: 60_000 / config.CONNECT_RATE_PER_IP_PER_MINUTE,
      maxOpenPerAddress: config.CONNECTIONS_PER_IP,
    }),
    liveInstances: [],
    graph: new GraphStore(redis, keys),
    queue: createChatQueue(queueConnection, keys),
    fanout: new SessionFanout(app, subscriber, keys, stats, firstDelta, log, {
      slowBytes: Math.floor(config.MAX_BACKPRESSURE_BYTES / 4),
      maxBytes: config.MAX_BACKPRESSURE_BYTES,
    }),
    firstDelta,
    stats,
    draining: false,
  };
  stats.countSessionsWith(ctx.fanout);
  ctx.queue.on('error', (error) => log.warn({ err: error.message }, 'queue error'));

  const { fanout } = ctx;
  app.ws('/ws', wsBehavior(ctx));
  const health = new HealthReporter(ctx, startedAt, uwsNative);
  registerHttpRoutes(app, { ctx, health, registry, indexHtml: loadIndexHtml() });

  // Lifetime counters of the whole cluster grow by what this replica saw since its last heartbeat.
  const reported = { connections: 0, messages: 0, errors: 0 };
  const heartbeat = async () => {
    const seen = {
      connections: stats.totalConnections,
      messages: stats.totalMessages,
      errors: stats.totalErrors,
    };
    await ctx.cluster.incrementCounters({
      connections: seen.connections - reported.connections,
      messages: seen.messages - reported.messages,
      errors: seen.errors - reported.errors,
    });
    Object.assign(reported, seen);
    await ctx.cluster.heartbeat(
      'gateway',
      config.GATEWAY_ID,
      {
        active_connections: stats.activeConnections,
        unique_browser_sessions: stats.uniqueSessions,
        processing_connections: stats.processingConnections,
        total_connections: stats.totalConnections,
        total_messages: stats.totalMessages,
        total_errors: stats.totalErrors,
        started_at: startedAt,
      },
      HEARTBEAT_TTL_MS,
    );
    // A gateway that died without leaving: drop its sockets from the map, then forget it.
    ctx.liveInstances = (await ctx.cluster.live('gateway')).map(
      (member) => `${member.id}#${member.figures.started_at ?? 0}`,
    );
    for (const dead of await ctx.cluster.expiredIds('gateway')) {
      const removed = await ctx.directory.reapGateway(dead);
      await ctx.cluster.forget('gateway', dead);
      log.info({ gateway: dead, sockets: removed }, 'reaped a dead gateway');
    }
  };
  const countError = () => stats.error('background_loop');
  await heartbeat().catch((error: unknown) =>
    log.warn({ err: error }, 'first heartbeat failed; Redis unreachable?'),
  );
  const subscriberWatch = new SubscriberWatch(subscriber, log, () => fanout.liveFeedLost());
  const loops = [
    startLoop('health', HEALTH_REFRESH_MS, () => health.refresh(), log, countError),
    startLoop('heartbeat', HEARTBEAT_INTERVAL_MS, heartbeat, log, countError),
    startLoop(
      'subscriber-watch',
      SUBSCRIBER_PING_MS,
      () => subscriberWatch.check(),
      log,
      countError,
    ),
    startLoop(
      'liveness',
      Math.min(config.HEARTBEAT_MS / 2, 5_000),
      () => {
        const deadline = clock() - Math.ceil((2 * config.HEARTBEAT_MS) / TICK_MS);
        const silent: Socket[] = [];
        fanout.forEachSocket((ws) => {
          const conn = connOf(ws);
          if (!conn.closed && conn.lastSeen < deadline) silent.push(ws);
        });
        for (const ws of silent)
          ws.end(CloseCode.heartbeatTimeout, 'no ping within twice heartbeatMs');
        firstDelta.forgetOld();
      },
      log,
      countError,
    ),
  ];

  const listen = (port: number) =>
    new Promise<us_listen_socket>((resolve, reject) => {
      app.listen(config.HOST, port, (socket) => {
        if (socket) resolve(socket);
        else reject(new Error(`cannot listen on ${config.HOST}:${port}`));
      });
    });
  if (config.PORT !== 0) await ensurePortFree(config.HOST, config.PORT);
  const first = await listen(config.PORT);
  const port = uws.us_socket_local_port(first);
  // uSockets listens with a backlog of 512 connections not yet accepted; when a replica dies,
  // its clients all come here at once, and SYNs beyond that are dropped and retried by TCP
  // 1, 3, 7, 15 s later. The listen sockets share the port (SO_REUSEPORT, as uSockets opens
  // them), so the kernel spreads new connections over all of their backlogs.
  const listenSockets = [first];
  for (let i = 1; i < LISTEN_SOCKETS; i++) {
    const more = await listen(port).catch(() => null);
    if (!more) break; // the port is exclusive here (no SO_REUSEPORT): one backlog it is
    listenSockets.push(more);
  }
  log.info(
    { port, gatewayId: config.GATEWAY_ID, uwsNative, version: VERSION },
    'gateway listening',
  );

  let stopping: Promise<void> | null = null;
  const stop = async () => {
    ctx.draining = true;
    metrics.drainStarted();
    log.info({ sockets: fanout.size }, 'draining: closing sockets with 1001');
    for (const ws of fanout.allSockets()) ws.end(CloseCode.draining, 'gateway draining; reconnect');
    const deadline = Date.now() + config.DRAIN_TIMEOUT_MS;
    while (fanout.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const ws of fanout.allSockets()) ws.close();
    for (const socket of listenSockets) uws.us_listen_socket_close(socket);
    subscriberWatch.stop();
    await Promise.all(loops.map((loop) => loop.stop()));
    fanout.stop();
    await ctx.directory.reapGateway(config.GATEWAY_ID).catch(() => undefined);
    await ctx.cluster.leave('gateway', config.GATEWAY_ID).catch(() => undefined);
    await ctx.queue.close().catch(() => undefined);
    for (const connection of [redis, subscriber, queueConnection]) connection.disconnect();
    log.info('gateway stopped');
  };
  return {
    port,
    stop: () => (stopping ??= stop()),
  };
}
