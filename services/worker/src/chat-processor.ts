import { DelayedError, type Job } from 'bullmq';
import type { ChatJobData } from '@chorus/state';
import { answerMessage } from './answer-message.js';
import { LeaseKeeper, LeaseLostError } from './lease-keeper.js';
import type { WorkerContext } from './worker-context.js';

/** How long a job waits before it checks again whether its session is free. */
const BUSY_RETRY_MS = 300;

/**
 * Processes one chat job. The job's message is answered by whichever worker holds the session's
 * lease, in inbox order: either this one (which then answers every waiting message of the session)
 * or another, in which case this job waits and checks again until its message is done.
 */
export function createChatProcessor(ctx: WorkerContext, shutdown: AbortSignal) {
  return async (job: Job<ChatJobData>, token?: string): Promise<string> => {
    const { sessionId, messageId } = job.data;
    const record = await ctx.inbox.get(sessionId, messageId);
    if (!record || record.state === 'done') return 'already answered';
    const fence = await ctx.lease.acquire(sessionId);
    if (fence === null) {
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
    const keeper = new LeaseKeeper(ctx.lease, sessionId, fence, ctx.settings.leaseTtlMs, ctx.log);
    const signal = AbortSignal.any([keeper.lost.signal, shutdown]);
    const done = ctx.metrics.jobStarted();
    try {
      for (;;) {
        const head = await ctx.inbox.head(sessionId);
        if (!head) {
          await ctx.lease.release(sessionId, fence);
          return 'nothing waiting';
        }
        const started = performance.now();
        const { outcome, waiting } = await answerMessage(ctx, {
          sessionId,
          fence,
          messageId: head.id,
          record: head.record,
          signal,
        });
        ctx.metrics.jobFinished(outcome, (performance.now() - started) / 1000);
        ctx.log.info({ sessionId, messageId: head.id, jobId: job.id, outcome }, 'message answered');
        if (waiting === 0) {
          await ctx.lease.untrack(sessionId);
          return 'answered';
        }
      }
    } catch (error) {
      if (error instanceof LeaseLostError) {
        // Whoever holds the session now answers it; this job checks back until its message is done.
        ctx.metrics.jobFinished('lease_lost', 0);
        ctx.log.warn({ sessionId, jobId: job.id }, 'lease lost; checking back later');
        await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
        throw new DelayedError();
      }
      // Shutdown or Redis trouble: give the session back so another attempt starts at once.
      await ctx.lease.release(sessionId, fence).catch(() => undefined);
      throw error;
    } finally {
      keeper.stop();
      done();
    }
  };
}
