import type {
  ErrorCode,
  ReplyEndEvent,
  SessionErrorEvent,
  SessionEventBody,
} from '@chorus/protocol';
import type { HistoryTurn, MessageRecord } from '@chorus/state';
import { buildPrompt, TUTOR } from './agent.js';
import { DeltaCoalescer } from './delta-coalescer.js';
import { LeaseLostError } from './lease-keeper.js';
import { ModelUnavailableError } from './providers/chat-model.js';
import { AnswerStopped, watchForAbandonment } from './stop-signals.js';
import type { WorkerContext } from './worker-context.js';

export interface Assignment {
  sessionId: string;
  fence: number;
  messageId: string;
  record: MessageRecord;
  /** Aborts when the lease is lost or the worker gives the job back. */
  signal: AbortSignal;
}

export type AnswerOutcome = 'completed' | 'cancelled' | 'llm_unavailable' | 'failed';

type FinalEvent = ReplyEndEvent | SessionErrorEvent;

/**
 * Answers one message: `status`, `reply.start`, coalesced `reply.delta`s, then `reply.end` (also
 * when cancelled or abandoned) or `error`, in the same atomic step that marks it done.
 * Throws LeaseLostError when fenced out, and the job's abort reason when it is handed back.
 */
export async function answerMessage(
  ctx: WorkerContext,
  job: Assignment,
): Promise<{ outcome: AnswerOutcome; waiting: number }> {
  const { sessionId, fence, messageId, record } = job;
  const agent = TUTOR.name;
  const emit = async (body: SessionEventBody) => {
    if ((await ctx.events.appendAsLeaseHolder(sessionId, fence, body)) === null) {
      throw new LeaseLostError('fenced out');
    }
  };
  const cancel = ctx.cancels.watch(sessionId, messageId);
  const abandon = watchForAbandonment(ctx.directory, sessionId, ctx.settings.replyGraceMs, ctx.log);
  const timeout = AbortSignal.timeout(ctx.settings.jobTimeoutMs);
  const stop = AbortSignal.any([cancel.signal, abandon.signal]);
  const signal = AbortSignal.any([job.signal, timeout, stop]);
  const coalescer = new DeltaCoalescer(ctx.settings.deltaFlushMs, (text) =>
    emit({ type: 'reply.delta', replyTo: messageId, agent, text }),
  );
  const turns: HistoryTurn[] = [{ role: 'user', content: record.text, id: messageId }];
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  let text = '';
  let final: FinalEvent;
  let outcome: AnswerOutcome;
  try {
    await emit({ type: 'status', state: 'processing', replyTo: messageId });
    await emit({ type: 'reply.start', replyTo: messageId, agent });
    if (await ctx.inbox.cancelRequested(sessionId, messageId)) throw new AnswerStopped('cancelled');
    const history = await ctx.inbox.history(sessionId);
    const messages = buildPrompt(
      ctx.knowledge,
      history,
      record.text,
      ctx.settings.historyMaxMessages,
    );
    let usage: ReplyEndEvent['usage'];
    for await (const chunk of ctx.model.stream({ messages, signal })) {
      if (chunk.kind === 'usage') {
        usage = { inputTokens: chunk.inputTokens, outputTokens: chunk.outputTokens };
        continue;
      }
      if (text === '') ctx.metrics.llmFirstToken(agent, ctx.model.model, seconds());
      text += chunk.text;
      coalescer.push(chunk.text);
    }
    await coalescer.flush();
    ctx.metrics.llmCall(agent, ctx.model.model, 'ok', seconds());
    if (usage) ctx.metrics.llmTokens(agent, ctx.model.model, usage.inputTokens, usage.outputTokens);
    final = replyEnd(ctx, messageId, text, usage ? { usage } : {});
    turns.push({ role: 'assistant', content: text, id: messageId });
    outcome = 'completed';
  } catch (error) {
    if (error instanceof LeaseLostError) throw error;
    if (job.signal.aborted) throw job.signal.reason;
    if (stop.aborted || error instanceof AnswerStopped) {
      // What was streamed stands: the deltas sent so far equal the final text.
      await coalescer.flush();
      ctx.metrics.llmCall(agent, ctx.model.model, 'aborted', seconds());
      final = replyEnd(ctx, messageId, text, { cancelled: true });
      if (text) turns.push({ role: 'assistant', content: text, id: messageId });
      outcome = 'cancelled';
    } else {
      coalescer.discard();
      const failure = classify(error, timeout.aborted);
      ctx.metrics.llmCall(agent, ctx.model.model, timeout.aborted ? 'timeout' : 'error', seconds());
      ctx.log.warn({ err: error, sessionId, messageId, code: failure.code }, 'answer failed');
      final = { type: 'error', code: failure.code, message: failure.message, replyTo: messageId };
      outcome = failure.code === 'llm_unavailable' ? 'llm_unavailable' : 'failed';
    }
  } finally {
    cancel.release();
    abandon.release();
  }
  const finished = await ctx.inbox.finish(sessionId, fence, messageId, final, turns);
  if (!finished) throw new LeaseLostError('fenced out at finish');
  return { outcome, waiting: finished.waiting };
}

function replyEnd(
  ctx: WorkerContext,
  messageId: string,
  text: string,
  extra: Pick<ReplyEndEvent, 'usage' | 'cancelled'>,
): ReplyEndEvent {
  const agent = TUTOR.name;
  return {
    type: 'reply.end',
    replyTo: messageId,
    agent,
    agents: [agent],
    text,
    ...extra,
    ...(ctx.model.offline ? { offline: true } : {}),
  };
}

/** What the client is told; never a stack trace or internal detail. */
function classify(error: unknown, timedOut: boolean): { code: ErrorCode; message: string } {
  if (timedOut) return { code: 'llm_unavailable', message: 'the model did not answer in time' };
  if (error instanceof ModelUnavailableError) {
    return {
      code: 'llm_unavailable',
      message: 'the model is unavailable right now; please try again',
    };
  }
  return { code: 'internal', message: 'something went wrong while answering; please try again' };
}
