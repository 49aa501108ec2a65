import { setTimeout as sleep } from 'node:timers/promises';
import type { ChatJobData } from '@chorus/state';
import type { WorkerContext } from './worker-context.js';

/**
 * A job that failed for good (attempts spent, or stalled too often: a poison message) still owes
 * its client an ending. Once the session's lease is free, end the message with `error`
 * `internal`, and free the session for the messages behind it.
 */
export async function giveUp(
  ctx: WorkerContext,
  job: ChatJobData,
  patienceMs: number,
): Promise<boolean> {
  const { sessionId, messageId } = job;
  const deadline = Date.now() + patienceMs;
  for (;;) {
    const record = await ctx.inbox.get(sessionId, messageId);
    if (!record || record.state === 'done') return false;
    const fence = await ctx.lease.acquire(sessionId);
    if (fence !== null) {
      const finished = await ctx.inbox.finish(
        sessionId,
        fence,
        messageId,
        {
          type: 'error',
          code: 'internal',
          message: 'this message could not be answered; please send it again',
          replyTo: messageId,
        },
        [{ role: 'user', content: record.text, id: messageId }],
      );
      if (finished && finished.waiting > 0) await ctx.lease.release(sessionId, fence);
      else await ctx.lease.untrack(sessionId);
      ctx.metrics.jobFinished('failed', 0);
      return true;
    }
    if (Date.now() > deadline) return false;
    await sleep(500);
  }
}
