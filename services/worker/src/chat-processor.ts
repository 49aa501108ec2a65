import { DelayedError, type Job } from 'bullmq';
import type { ChatJobData, MessageInbox } from '@chorus/state';
import { answerMessage } from './answer-message.js';
import { LeaseKeeper, LeaseLostError } from './lease-keeper.js';
import type { StopScope } from './stop-signals.js';
import type { WorkerContext } from './worker-context.js';

/** How long a job waits before it checks again whether its session is free. */
const BUSY_RETRY_MS = 300;

type Claim = Awaited<ReturnType<MessageInbox['claim']>>;

/**
 * Processes one chat job: answers the session's waiting messages in inbox order, until none
 * waits. While the session's lease is held, the job checks back: the holder may be this job's
 * own earlier attempt, dead (BullMQ retries a stalled job while its lease may still run), so
 * only a free lease tells that the messages are answered or will be by this job. A message that
 * arrives while the lease is held needs no job (MessageInbox.accept), so this is rare.
 * Each message is claimed in one step (lease, inbox head, cancel request, history) and ended in
 * one (its queued events, final event, inbox, history, lease).
 */
export function createChatProcessor(ctx: WorkerContext, shutdown: StopScope) {
  const withHistory = ctx.model.readsContext !== false;
  const leaseTtlMs = ctx.settings.leaseTtlMs;
  return async (job: Job<ChatJobData>, token?: string): Promise<string> => {
    const { sessionId } = job.data;
    // Cancel requests published from here on are remembered: the claim reads the earlier ones.
    const hold = ctx.cancels.hold(sessionId);
    try {
      const claim: Claim = await ctx.inbox.claim(sessionId, {
        heldFence: null,
        leaseTtlMs,
        withHistory,
      });
      if (claim.status === 'busy') {
        await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
        throw new DelayedError();
      }
      if (claim.status !== 'claimed') return 'nothing waiting';
      return await answerAll(ctx, job, token, claim, shutdown, withHistory);
    } catch (error) {
      // BullMQ retries a failed job after a backoff of up to minutes; meanwhile its deduplication
      // key would keep a message accepted in that time from queuing a job of its own.
      if (!(error instanceof DelayedError)) await job.removeDeduplicationKey().catch(() => false);
      throw error;
    } finally {
      hold.release();
    }
  };
}

/** Answers the session's messages, from the one claimed, until none waits. */
async function answerAll(
  ctx: WorkerContext,
  job: Job<ChatJobData>,
  token: string | undefined,
  first: Extract<Claim, { status: 'claimed' }>,
  shutdown: StopScope,
  withHistory: boolean,
): Promise<string> {
  const { sessionId } = job.data;
  const { fence } = first;
  const warn = (what: string) => (error: unknown) =>
    ctx.log.warn({ err: error, sessionId }, `could not ${what} the session's processing count`);
  // The cluster-wide processing count (a /health figure) has the session from the answer's first
  // step that is not its last (or a lease renewal, which tracks too), not from the claim: an
  // answer done in one step (claim, then finish) costs no ZADD and ZREM, each a round trip as
  // dear as the answer's own. Not awaited: the same connection sends the untrack later.
  let tracked = false;
  const track = () => {
    if (tracked) return;
    tracked = true;
    ctx.lease.track(sessionId).catch(warn('add to'));
  };
  // Aborted when the lease is lost or the worker gives its jobs back.
  const stop = shutdown.child();
  const keeper = new LeaseKeeper(
    ctx.lease,
    sessionId,
    fence,
    ctx.settings.leaseTtlMs,
    ctx.log,
    stop,
    () => (tracked = true),
  );
  const done = ctx.metrics.jobStarted();
  try {
    let head: Claim = first;
    for (;;) {
      if (head.status === 'lost') throw new LeaseLostError('lease lost');
      if (head.status !== 'claimed') return 'nothing waiting'; // the claim let go of the lease
      // Its first attempt only: a retry's wait would count the first attempt again.
      if ((head.record.tries ?? 1) === 1) ctx.metrics.messageClaimed(head.record.ts);
      const started = performance.now();
      const { outcome, waiting } = await answerMessage(ctx, {
        sessionId,
        fence,
        messageId: head.id,
        record: head.record,
        cancelRequested: head.cancelRequested,
        history: head.history,
        stop,
        onStep: track,
      });
      ctx.metrics.jobFinished(outcome, (performance.now() - started) / 1000);
      ctx.log.info({ sessionId, messageId: head.id, jobId: job.id, outcome }, 'message answered');
      if (waiting === 0) {
        if (tracked) ctx.lease.untrack(sessionId).catch(warn('remove from'));
        return 'answered';
      }
      track(); // more messages of this session to answer
      head = await ctx.inbox.claim(sessionId, {
        heldFence: fence,
        leaseTtlMs: ctx.settings.leaseTtlMs,
        withHistory,
      });
    }
  } catch (error) {
    if (error instanceof LeaseLostError) {
      // The session may be free now, with messages waiting: this job claims it again later.
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
    stop.release();
    done();
  }
}
