import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

export interface ConnectionOptions {
  /** Name shown by CLIENT LIST, e.g. `gw-1:commands`. */
  name: string;
  /** Blocking connections (BullMQ workers) must wait for Redis instead of failing commands. */
  blocking?: boolean;
  onError?: (error: Error) => void;
}

/**
 * A connection that never gives up: it reconnects with capped backoff for as long as the
 * process lives. Plain command connections fail queued commands fast while Redis is away, so a
 * client frame gets a clear error instead of hanging.
 */
export function createRedis(url: string, options: ConnectionOptions): Redis {
  const base: RedisOptions = {
    connectionName: options.name,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2_000),
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
    lazyConnect: false,
  };
  const redis = new Redis(
    url,
    options.blocking
      ? { ...base, maxRetriesPerRequest: null, enableReadyCheck: false }
      : { ...base, maxRetriesPerRequest: 2, commandTimeout: 5_000, enableOfflineQueue: true },
  );
  // Without a listener ioredis prints every failed reconnect; the owner decides what to log.
  redis.on('error', options.onError ?? (() => undefined));
  return redis;
}

/** Connections of one process, named `<owner>:<role>`, with one place that hears their errors. */
export function redisConnector(
  url: string,
  owner: string,
  onError: (role: string, error: Error) => void,
) {
  return (role: string, options: { blocking?: boolean } = {}): Redis =>
    createRedis(url, {
      name: `${owner}:${role}`,
      ...(options.blocking ? { blocking: true } : {}),
      onError: (error) => onError(role, error),
    });
}
