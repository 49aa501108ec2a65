import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import { CHAT_QUEUE, enqueueChat, sessionJobKey, type ChatJobData } from '@chorus/state';
import type { WorkerContext } from './worker-context.js';

/**
 * How often workers must have started on a message, without an end, for it to count as a poison.
 * A job's own limits (BullMQ's 3 stalls, 10 attempts) add up over every message of its turn, so a
 * job can run out on a message that was not the trouble: that message gets a fresh job instead.
 */
export const POISON_TRIES = 3;

/**
 * A job that failed for good (attempts spent, or stalled too often) leaves the session's inbox
 * without a job. Once the session's lease is free, the inbox's head, if it is a poison (tried
 * POISON_TRIES times), ends with `error` `internal`; the messages waiting get a job.
 */
export async function giveUp(
  ctx: WorkerContext,
  queue: Queue<ChatJobData>,
  job: ChatJobData,
  patienceMs: number,
): Promise<boolean> {
  const { sessionId } = job;
  // First a job that outlives this worker: should it die, or Redis fail, before the end below,
  // that job takes the session over once any lease has lapsed.
  await queue.add(CHAT_QUEUE, job, { delay: patienceMs + ctx.settings.leaseTtlMs });
  const deadline = Date.now() + patienceMs;
  for (;;) {
    const fence = await ctx.lease.acquire(sessionId);
    if (fence !== null) return endHead(ctx, queue, job, fence);
    if ((await ctx.inbox.head(sessionId)) === null || Date.now() > deadline) return false;
    await sleep(500);
  }
}

async function endHead(
  ctx: WorkerContext,
  queue: Queue<ChatJobData>,
  job: ChatJobData,
  fence: number,
): Promise<boolean> {
  const { sessionId } = job;
  const head = await ctx.inbox.head(sessionId);
  let ended = false;
  let waiting = head === null ? 0 : 1;
  if (head && (head.record.tries ?? 0) >= POISON_TRIES) {
    const finished = await ctx.inbox.finish(
      sessionId,
      fence,
      head.id,
      {
        type: 'error',
        code: 'internal',
        message: 'this message could not be answered; please send it again',
        replyTo: head.id,
      },
      [{ role: 'user', content: head.record.text, id: head.id }],
    );
    ended = finished !== null;
    waiting = finished?.waiting ?? 0;
  }
  if (ended && waiting === 0)
    await ctx.lease.untrack(sessionId); // the finish let go
  else await ctx.lease.release(sessionId, fence);
  // The key a message accepted from now on would queue under: one job for both.
  if (waiting > 0) await enqueueChat(queue, job, sessionJobKey(sessionId, fence));
  if (ended) ctx.metrics.jobFinished('failed', 0);
  return ended;
}
