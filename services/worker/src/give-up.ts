import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import { CHAT_QUEUE, enqueueChat, sessionJobKey, type ChatJobData } from '@chorus/state';
import type { WorkerContext } from './worker-context.js';

/**
 * A job that failed for good (attempts spent, or stalled too often: a poison message) still owes
 * the session's oldest waiting message an ending, since that is the message it was stuck on. Once
 * the session's lease is free, that message ends with `error` `internal`, and the messages behind
 * it get a job of their own.
 */
export async function giveUp(
  ctx: WorkerContext,
  queue: Queue<ChatJobData>,
  job: ChatJobData,
  patienceMs: number,
): Promise<boolean> {
  const { sessionId } = job;
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
  const { leaseTtlMs } = ctx.settings;
  // Should this worker die before it lets go, this job claims the session once the lease lapses.
  await queue.add(CHAT_QUEUE, job, { delay: leaseTtlMs });
  const head = await ctx.inbox.claim(sessionId, {
    heldFence: fence,
    leaseTtlMs,
    withHistory: false,
  });
  if (head.status !== 'claimed') {
    await ctx.lease.release(sessionId, fence);
    return false;
  }
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
  if (finished && finished.waiting > 0) {
    await ctx.lease.release(sessionId, fence);
    // The key a message accepted from now on would queue under: one job for both.
    await enqueueChat(queue, job, sessionJobKey(sessionId, fence));
  } else {
    await ctx.lease.untrack(sessionId);
  }
  ctx.metrics.jobFinished('failed', 0);
  return true;
}
