import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, expect, inject, it } from 'vitest';
import { createLogger, createRegistry, WorkerMetrics } from '@chorus/observability';
import {
  createChatQueue,
  enqueueChat,
  KeySchema,
  MessageInbox,
  SessionLease,
  sessionJobKey,
  type ChatJobData,
} from '@chorus/state';
import { createChatProcessor } from './chat-processor.js';
import { giveUp, POISON_TRIES } from './give-up.js';
import { CancelListener, StopScope } from './stop-signals.js';
import type { WorkerContext } from './worker-context.js';

const LEASE_TTL_MS = 2_000;
let redis: Redis;
let queue: Queue<ChatJobData>;
let keys: KeySchema;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
  keys = new KeySchema(`t${randomBytes(5).toString('hex')}`);
  queue = createChatQueue(redis.duplicate(), keys);
});
afterEach(async () => {
  const found = await redis.keys(`*${keys.prefix}*`);
  if (found.length > 0) await redis.del(...found);
});
afterAll(async () => {
  await queue.close();
  redis.disconnect();
});

/** The parts of a worker's context that a failing job uses, on the real Redis. */
function context(inboxRedis: Redis = redis): WorkerContext {
  const log = createLogger('worker', 'w-test', 'silent');
  return {
    settings: { leaseTtlMs: LEASE_TTL_MS },
    log,
    metrics: new WorkerMetrics(createRegistry('worker', 'w-test')),
    inbox: new MessageInbox(inboxRedis, keys, {
      eventsMaxLen: 100,
      sessionTtlSeconds: 600,
      historyMaxEntries: 10,
    }),
    lease: new SessionLease(redis, keys, LEASE_TTL_MS),
    cancels: new CancelListener(redis.duplicate({ lazyConnect: true }), keys, log, () =>
      Promise.resolve(false),
    ),
    model: { readsContext: false },
  } as unknown as WorkerContext;
}

it('a job that fails before its claim lets go of its key: a message accepted meanwhile gets a job', async () => {
  // The claim's connection is down (never connected, no offline queue): the claim fails at once.
  const down = new Redis(inject('redisUrl'), { lazyConnect: true, enableOfflineQueue: false });
  const session = randomBytes(8).toString('hex');
  const key = sessionJobKey(session, 0);
  await enqueueChat(queue, { sessionId: session, messageId: 'm1' }, key);
  const [first] = await queue.getJobs(['waiting']);

  await expect(createChatProcessor(context(down), new StopScope())(first!)).rejects.toThrow();

  // m2 arrives while the failed job waits out its backoff, under the same key.
  await enqueueChat(queue, { sessionId: session, messageId: 'm2' }, key);
  const waiting = await queue.getJobs(['waiting']);
  expect(waiting.map((job) => job.data.messageId).sort()).toEqual(['m1', 'm2']);
  expect(await queue.getDeduplicationJobId(key)).not.toBe(first!.id);
});

/** Claims the session's head `times` times, as workers that died on it would; the last holds on. */
async function claimTimes(ctx: WorkerContext, session: string, times: number) {
  for (let i = 1; ; i++) {
    const claim = await ctx.inbox.claim(session, {
      heldFence: null,
      leaseTtlMs: LEASE_TTL_MS,
      withHistory: false,
    });
    if (claim.status !== 'claimed') throw new Error(`not claimed: ${claim.status}`);
    if (i === times) return claim;
    await ctx.lease.release(session, claim.fence);
  }
}

it('ends a poison message, frees the session and queues a job for the rest', async () => {
  const ctx = context();
  const session = randomBytes(8).toString('hex');
  for (const id of ['m1', 'm2']) await ctx.inbox.accept(session, { id, text: id, ts: 1 });
  // Workers died on m1 POISON_TRIES times; the last one's lease still runs for a while.
  const claim = await claimTimes(ctx, session, POISON_TRIES);

  const started = Date.now();
  expect(await giveUp(ctx, queue, { sessionId: session, messageId: 'm1' }, 10_000)).toBe(true);
  expect(Date.now() - started).toBeGreaterThan(LEASE_TTL_MS - 500); // waited for the lease

  const events = await redis.xrange(keys.session(session).events, '-', '+');
  const last = JSON.parse(events.at(-1)![1][1]!) as Record<string, unknown>;
  expect(last).toMatchObject({ type: 'error', code: 'internal', replyTo: 'm1' });
  expect(await ctx.inbox.get(session, 'm1')).toMatchObject({ state: 'done' });
  expect(await redis.lrange(keys.session(session).inbox, 0, -1)).toEqual(['m2']);
  expect(await redis.exists(keys.session(session).lease)).toBe(0);

  // m2 has a job now, under the key a message accepted next would use, and a delayed spare.
  const fence = Number(await redis.get(keys.session(session).fence));
  expect(fence).toBeGreaterThan(claim.fence);
  const m3 = await ctx.inbox.accept(session, { id: 'm3', text: 'm3', ts: 2 });
  expect(m3).toMatchObject({ jobKey: sessionJobKey(session, fence) });
  const waiting = await queue.getJobs(['waiting']);
  expect(waiting.map((job) => job.opts.deduplication?.id)).toEqual([sessionJobKey(session, fence)]);
  const delayed = await queue.getJobs(['delayed']);
  expect(delayed.map((job) => job.data.sessionId)).toEqual([session]);
});

it('leaves a message tried fewer times to the job it queues: the job ran out on earlier ones', async () => {
  const ctx = context();
  const session = randomBytes(8).toString('hex');
  await ctx.inbox.accept(session, { id: 'later', text: 'later', ts: 1 });
  await claimTimes(ctx, session, POISON_TRIES - 1);
  expect(await giveUp(ctx, queue, { sessionId: session, messageId: 'earlier' }, 10_000)).toBe(
    false,
  );
  expect(await ctx.inbox.get(session, 'later')).toMatchObject({
    state: 'pending',
    tries: POISON_TRIES - 1,
  });
  expect(await redis.exists(keys.session(session).lease)).toBe(0);
  const waiting = await queue.getJobs(['waiting']);
  expect(waiting.map((job) => job.data.sessionId)).toEqual([session]);
});

it('owes nothing when no message waits', async () => {
  const ctx = context();
  const session = randomBytes(8).toString('hex');
  expect(await giveUp(ctx, queue, { sessionId: session, messageId: 'gone' }, 1_000)).toBe(false);
  expect(await queue.getJobs(['waiting'])).toEqual([]);
  // Only the spare, queued before giving up could fail: it will find nothing to do.
  expect(await queue.getJobs(['delayed'])).toHaveLength(1);
});
