import type { AddressInfo } from 'node:net';
import { Worker, type Job } from 'bullmq';
import type { WorkerConfig } from '@chorus/config';
import { createRegistry, startLoop, WorkerMetrics, type Logger } from '@chorus/observability';
import {
  CHAT_QUEUE,
  ClusterDirectory,
  createChatQueue,
  redisConnector,
  unsupportedRedis,
  type Redis,
  GraphStore,
  KeySchema,
  MessageInbox,
  SessionEvents,
  SessionLease,
  TokenBudget,
  SessionDirectory,
  SUBSCRIBER_PING_MS,
  SubscriberWatch,
  type ChatJobData,
} from '@chorus/state';
import { createChatProcessor } from './chat-processor.js';
import { KnowledgeBase } from './knowledge/knowledge-base.js';
import { seedKnowledgeGraph } from './knowledge/seed.js';
import { giveUp } from './give-up.js';
import { GraphTools } from './knowledge/graph-tools.js';
import { DEFAULT_TEAM_FILE, loadTeam } from './team/team-config.js';
import { startMetricsServer } from './metrics-server.js';
import { AbandonmentWatch, CancelListener, StopScope } from './stop-signals.js';
import { createModel } from './providers/create-model.js';
import type { WorkerContext } from './worker-context.js';

const HEARTBEAT_INTERVAL_MS = 5_000;
const HEARTBEAT_TTL_MS = 15_000;
const GRAPH_REFRESH_MS = 60_000;
/**
 * BullMQ Worker instances (fetch loops) that share WORKER_CONCURRENCY. One Worker fetches jobs one
 * at a time, two round trips each when its queue runs dry: at 3,000 chats/s on 2 cores that alone
 * made jobs wait a few ms, and two loops halved that wait (docs/performance.md); four did worse.
 */
const FETCH_LOOPS = 2;

export interface RunningWorker {
  metricsPort: number;
  /** Takes no new job, finishes or hands back the ones in hand; safe to call twice. */
  stop(): Promise<void>;
}

export async function startWorker(config: WorkerConfig, log: Logger): Promise<RunningWorker> {
  // The team file is read first: a bad one stops the worker before it touches Redis.
  const team = loadTeam(config.TEAM_FILE ?? DEFAULT_TEAM_FILE);
  const agentCount = team.agents.length + 1;
  const keys = new KeySchema(config.KEY_PREFIX);
  const connect = redisConnector(config.REDIS_URL, config.WORKER_ID, (role, error) =>
    log.warn({ err: error.message, role }, 'redis connection error'),
  );
  const redis = connect('commands');
  const queueConnection = connect('queue');
  void unsupportedRedis(redis).then((problem) => {
    if (!problem) return;
    log.fatal(problem);
    process.exit(1);
  });
  const registry = createRegistry('worker', config.WORKER_ID);
  const metrics = new WorkerMetrics(registry);
  const graphStore = new GraphStore(redis, keys);
  const knowledge = new KnowledgeBase(graphStore);
  const cluster = new ClusterDirectory(redis, keys);
  const queue = createChatQueue(queueConnection, keys);
  queue.on('error', (error) => log.warn({ err: error.message }, 'queue error'));

  const inbox = new MessageInbox(redis, keys, {
    eventsMaxLen: config.EVENTS_MAXLEN,
    sessionTtlSeconds: config.SESSION_TTL_SECONDS,
    historyMaxEntries: config.HISTORY_MAX_MESSAGES,
  });
  const cancelSubscriber = connect('cancels', { blocking: true });
  const cancels = new CancelListener(cancelSubscriber, keys, log, (sessionId, id) =>
    inbox.cancelRequested(sessionId, id),
  );
  await cancels.start();

  const seeded = await seedKnowledgeGraph(graphStore);
  await knowledge.refresh();
  log.info({ ...seeded, inMemory: knowledge.size }, 'knowledge graph ready');

  const model = createModel(config, knowledge, (state) => {
    metrics.breakerState(config.OPENAI_MODEL, state);
    log.warn({ state }, 'model circuit breaker changed state');
  });
  if (model.model === 'echo')
    log.warn('MODEL_PROVIDER=echo: a benchmark stand-in answers, not a model');
  else if (model.offline)
    log.warn('no model configured: answering offline from the knowledge graph');

  const directory = new SessionDirectory(redis, keys, config.SESSION_TTL_SECONDS);
  const ctx: WorkerContext = {
    settings: {
      workerId: config.WORKER_ID,
      leaseTtlMs: config.LEASE_TTL_MS,
      jobTimeoutMs: config.JOB_TIMEOUT_MS,
      deltaFlushMs: config.DELTA_FLUSH_MS,
      historyMaxMessages: config.HISTORY_MAX_MESSAGES,
      replyGraceMs: config.REPLY_GRACE_MS,
      historyTokenBudget: config.HISTORY_TOKEN_BUDGET,
      agentLogMax: config.AGENT_LOG_MAX,
    },
    log,
    metrics,
    events: new SessionEvents(redis, keys, config.EVENTS_MAXLEN),
    inbox,
    lease: new SessionLease(redis, keys, config.LEASE_TTL_MS),
    budget: new TokenBudget(redis, keys, config.MODEL_TOKENS_PER_SESSION_PER_HOUR),
    directory,
    cancels,
    abandonment: new AbandonmentWatch(directory, config.REPLY_GRACE_MS, log),
    knowledge,
    tools: new GraphTools(graphStore, knowledge),
    team,
    model,
  };

  const shutdown = new StopScope();
  const processChat = createChatProcessor(ctx, shutdown);
  let activeJobs = 0;
  const run = async (job: Job<ChatJobData>, token?: string) => {
    activeJobs++;
    try {
      return await processChat(job, token);
    } finally {
      activeJobs--;
    }
  };
  const bullConnections: Redis[] = [];
  const workers = shares(config.WORKER_CONCURRENCY, FETCH_LOOPS).map((concurrency, i) => {
    const connection = connect(`jobs-${i + 1}`, { blocking: true });
    bullConnections.push(connection);
    return new Worker<ChatJobData>(CHAT_QUEUE, run, {
      connection,
      prefix: keys.queuePrefix,
      concurrency,
      // A dead worker's job is taken over within ~15 s: its lock lapses after 10 s and the
      // stalled check runs every 5 s.
      lockDuration: 10_000,
      stalledInterval: 5_000,
      maxStalledCount: 3,
    });
  });
  const onFailed = (job: Job<ChatJobData> | undefined, error: Error) => {
    log.warn({ jobId: job?.id, err: error.message }, 'job attempt failed');
    if (!job) return;
    job
      .isFailed()
      .then((final) => (final ? giveUp(ctx, queue, job.data, 3 * config.LEASE_TTL_MS) : false))
      .then(
        (ended) =>
          ended && log.error({ jobId: job.id }, 'gave up on a message: ended it with an error'),
        (giveUpError: unknown) =>
          log.error({ err: giveUpError, jobId: job.id }, 'could not end a failed message'),
      );
  };
  for (const worker of workers) {
    worker.on('error', (error) => log.warn({ err: error.message }, 'worker error'));
    worker.on('failed', onFailed);
  }

  const heartbeat = async () => {
    await cluster.heartbeat(
      'worker',
      config.WORKER_ID,
      {
        agents: agentCount,
        concurrency: config.WORKER_CONCURRENCY,
        active_jobs: activeJobs,
        offline: model.offline ? 1 : 0,
      },
      HEARTBEAT_TTL_MS,
    );
    metrics.queueSampled(await queue.getJobCounts('wait', 'active', 'delayed', 'failed'));
  };
  await heartbeat();
  const countError = () => metrics.error('background_loop');
  // A cancel subscription gone silent would lose every cancel until TCP keepalive gives up.
  const cancelWatch = new SubscriberWatch(cancelSubscriber, log);
  const loops = [
    startLoop('heartbeat', HEARTBEAT_INTERVAL_MS, heartbeat, log, countError),
    startLoop('cancel-watch', SUBSCRIBER_PING_MS, () => cancelWatch.check(), log, countError),
    // Re-seeds too, should Redis have lost the graph (a restart without persistence).
    startLoop(
      'graph-refresh',
      GRAPH_REFRESH_MS,
      async () => {
        await seedKnowledgeGraph(graphStore);
        await knowledge.refresh();
      },
      log,
      countError,
    ),
  ];

  const health = async () => {
    const redisUp = await redis.ping().then(
      () => true,
      () => false,
    );
    return {
      healthy: redisUp,
      body: {
        status: redisUp ? 'healthy' : 'unhealthy',
        service: 'chorus-worker',
        workerId: config.WORKER_ID,
        provider: model.model === 'echo' ? 'echo' : model.offline ? 'offline' : 'openai',
        model: model.model,
        agents: agentCount,
        active_jobs: activeJobs,
        knowledge_graph: { nodes: knowledge.size },
        redis: { status: redisUp ? 'up' : 'down' },
      },
    };
  };
  const server = await startMetricsServer(config.METRICS_PORT, registry, health);
  const metricsPort = (server.address() as AddressInfo).port;
  log.info(
    { metricsPort, concurrency: config.WORKER_CONCURRENCY, model: model.model },
    'worker started',
  );

  let stopping: Promise<void> | null = null;
  const stop = async () => {
    log.info('stopping: taking no new jobs');
    const deadline = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), config.SHUTDOWN_TIMEOUT_MS).unref(),
    );
    const closed = Promise.all(workers.map((worker) => worker.close()));
    if ((await Promise.race([closed.then(() => 'closed' as const), deadline])) === 'timeout') {
      log.warn('jobs still running at the deadline: handing them back');
      shutdown.abort(new Error('worker shutting down'));
      await closed;
    }
    cancelWatch.stop();
    await Promise.all(loops.map((loop) => loop.stop()));
    await cluster.leave('worker', config.WORKER_ID).catch(() => undefined);
    await queue.close().catch(() => undefined);
    server.close();
    cancels.stop();
    for (const connection of [redis, ...bullConnections, queueConnection, cancelSubscriber]) {
      connection.disconnect();
    }
    log.info('worker stopped');
  };
  return { metricsPort, stop: () => (stopping ??= stop()) };
}

/** `total` split into at most `parts` positive shares, as evenly as whole numbers allow. */
function shares(total: number, parts: number): number[] {
  const count = Math.min(total, parts);
  return Array.from(
    { length: count },
    (_, i) => Math.floor(total / count) + (i < total % count ? 1 : 0),
  );
}
