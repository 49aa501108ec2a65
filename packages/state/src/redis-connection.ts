import type { RedisTarget } from '@chorus/config';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

export type { Redis };

export interface ConnectionOptions {
  /** Name shown by CLIENT LIST, e.g. `gw-1:commands`. */
  name: string;
  /** Blocking connections (BullMQ workers) must wait for Redis instead of failing commands. */
  blocking?: boolean;
  onError?: (error: Error) => void;
}

const backoff = (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 6), 2_000);

/**
 * A connection that never gives up: it reconnects with capped backoff for as long as the
 * process lives. Plain command connections fail queued commands fast while Redis is away, so a
 * client frame gets a clear error instead of hanging.
 *
 * On Redis Cluster the client is ioredis' `Cluster`, typed as `Redis`: it has the same command
 * API, and every multi-key command, MULTI and script of Chorus stays inside one hash tag.
 */
export function createRedis(target: RedisTarget, options: ConnectionOptions): Redis {
  const perConnection: RedisOptions = {
    connectionName: options.name,
    retryStrategy: backoff,
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
    lazyConnect: false,
    ...(options.blocking
      ? { maxRetriesPerRequest: null, enableReadyCheck: false }
      : {
          maxRetriesPerRequest: 2,
          commandTimeout: 5_000,
          enableOfflineQueue: true,
          // A command sent on a connection that then dropped may have run: sent again, a script
          // would run twice (two reply.end for one message). It times out as an error instead.
          autoResendUnfulfilledCommands: false,
        }),
  };
  // A Redis Cluster resends such a command itself after `retryDelayOnFailover`: not these.
  const redis = connect(target, perConnection, options.blocking ? {} : { retryDelayOnFailover: 0 });
  // Without a listener ioredis prints every failed reconnect; the owner decides what to log.
  redis.on('error', options.onError ?? (() => undefined));
  return redis;
}

function connect(
  target: RedisTarget,
  perConnection: RedisOptions,
  perCluster: ClusterOptions,
): Redis {
  if (target.kind === 'single') return new Redis(target.url, perConnection);
  const auth: RedisOptions = {
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: {} } : {}),
  };
  if (target.kind === 'sentinel') {
    return new Redis({
      ...perConnection,
      ...auth,
      sentinels: target.sentinels,
      name: target.masterName,
      db: target.db,
      ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
      ...(target.tls ? { enableTLSForSentinelMode: true } : {}),
      sentinelRetryStrategy: backoff,
      // A Sentinel that accepts and never answers would otherwise hold the connection for good.
      sentinelCommandTimeout: 5_000,
    });
  }
  const cluster = new Cluster(target.nodes, {
    ...perCluster,
    redisOptions: { ...perConnection, ...auth },
    clusterRetryStrategy: backoff,
    enableOfflineQueue: true,
    // One subscriber per shard, so SSUBSCRIBE reaches the shard that owns each session's slot.
    shardedSubscribers: true,
  });
  return cluster as unknown as Redis;
}

/** Connections of one process, named `<owner>:<role>`, with one place that hears their errors. */
export function redisConnector(
  target: RedisTarget,
  owner: string,
  onError: (role: string, error: Error) => void,
) {
  return (role: string, options: { blocking?: boolean } = {}): Redis =>
    createRedis(target, {
      name: `${owner}:${role}`,
      ...(options.blocking ? { blocking: true } : {}),
      onError: (error) => onError(role, error),
    });
}

/** Sharded pub/sub (SSUBSCRIBE/SPUBLISH) arrived in Redis 7.0. */
export const MIN_REDIS_VERSION = [7, 0] as const;

/**
 * Why this Redis cannot serve Chorus, once it answers (undefined when it can). Waits for Redis
 * while it is away, so that a service may start before its Redis.
 */
export async function unsupportedRedis(redis: Redis, retryMs = 1_000): Promise<string | undefined> {
  for (;;) {
    try {
      const info = await redis.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
      const [major = 0, minor = 0] = version.split('.').map(Number);
      const [needMajor, needMinor] = MIN_REDIS_VERSION;
      if (major > needMajor || (major === needMajor && minor >= needMinor)) return undefined;
      return `Redis ${version} is too old: Chorus needs Redis ${needMajor}.${needMinor} or newer (sharded pub/sub)`;
    } catch {
      if (redis.status === 'end') return undefined; // closed by its owner: nothing to say
      await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
    }
  }
}
