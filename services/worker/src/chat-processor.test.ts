import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createLogger, createRegistry, WorkerMetrics } from '@chorus/observability';
import {
  createChatQueue,
  enqueueChat,
  KeySchema,
  MessageInbox,
  sessionJobKey,
  type ChatJobData,
} from '@chorus/state';
import { createChatProcessor } from './chat-processor.js';
import { CancelListener, StopScope } from './stop-signals.js';
import type { WorkerContext } from './worker-context.js';

let redis: Redis;
let queue: Queue<ChatJobData>;
let keys: KeySchema;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
  keys = new KeySchema(`t${randomBytes(5).toString('hex')}`);
  queue = createChatQueue(redis.duplicate(), keys);
});
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  redis.disconnect();
});

it('a job that fails before its claim lets go of its key: a message accepted meanwhile gets a job', async () => {
  const log = createLogger('worker', 'w-test', 'silent');
  // The claim's connection is down (never connected, no offline queue): the claim fails at once.
  const down = new Redis(inject('redisUrl'), { lazyConnect: true, enableOfflineQueue: false });
  const ctx = {
    settings: { leaseTtlMs: 2_000 },
    log,
    metrics: new WorkerMetrics(createRegistry('worker', 'w-test')),
    inbox: new MessageInbox(down, keys, {
      eventsMaxLen: 100,
      sessionTtlSeconds: 600,
      historyMaxEntries: 10,
    }),
    cancels: new CancelListener(redis.duplicate({ lazyConnect: true }), keys, log),
    model: { readsContext: false },
  } as unknown as WorkerContext;
  const session = randomBytes(8).toString('hex');
  const key = sessionJobKey(session, 0);
  await enqueueChat(queue, { sessionId: session, messageId: 'm1' }, key);
  const [first] = await queue.getJobs(['waiting']);

  await expect(createChatProcessor(ctx, new StopScope())(first!)).rejects.toThrow();

  // m2 arrives while the failed job waits out its backoff, under the same key.
  await enqueueChat(queue, { sessionId: session, messageId: 'm2' }, key);
  const waiting = await queue.getJobs(['waiting']);
  expect(waiting.map((job) => job.data.messageId).sort()).toEqual(['m1', 'm2']);
  expect(await queue.getDeduplicationJobId(key)).not.toBe(first!.id);
});
