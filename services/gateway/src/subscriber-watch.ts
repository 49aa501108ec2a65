import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@chorus/observability';
import type { Redis } from '@chorus/state';

/** How often the subscriber connection is asked for a PONG, and how long it has to answer. */
export const SUBSCRIBER_PING_MS = 5_000;

/**
 * A subscriber connection whose peer vanished without a word (host down, network partition)
 * reports nothing until TCP keepalive gives up, hours later, and meanwhile the gateway's sockets
 * get no live events. A PING left unanswered for SUBSCRIBER_PING_MS drops the connection: it
 * reconnects, and its sockets replay what they missed (see SessionFanout).
 * A Redis Cluster's shard subscribers are internal to ioredis: not checked here.
 */
export async function checkSubscriber(subscriber: Redis, log: Logger): Promise<void> {
  if (subscriber.isCluster || subscriber.status !== 'ready') return;
  const pong = subscriber.ping().then(
    () => true,
    () => true, // failed, not silent: the connection reports its own trouble
  );
  const answered = await Promise.race([pong, sleep(SUBSCRIBER_PING_MS, false, { ref: false })]);
  if (answered || subscriber.status !== 'ready') return;
  log.warn({ waitedMs: SUBSCRIBER_PING_MS }, 'events connection silent: reconnecting it');
  subscriber.disconnect(true);
}
