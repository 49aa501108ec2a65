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
import type { WorkerContext } from './worker-context.js';

export interface Assignment {
  sessionId: string;
  fence: number;
  messageId: string;
  record: MessageRecord;
  /** Aborts when the lease is lost or the worker gives the job back. */
  signal: AbortSignal;
}

export type AnswerOutcome = 'completed' | 'llm_unavailable' | 'failed';

/**
 * Answers one message: `status`, `reply.start`, coalesced `reply.delta`s, then `reply.end` or
 * `error` in the same atomic step that marks it done. Throws LeaseLostError when fenced out.
 */
export async function answerMessage(
  ctx: WorkerContext,
  job: Assignment,
): Promise<{ outcome: AnswerOutcome; waiting: number }> {
  const { sessionId, fence, messageId, record } = job;
  const agent = TUTOR.name;
  const emit = async (body: SessionEventBody) => {
    if ((await ctx.events.appendAsLeaseHolder(sessionId, fence, body)) === null)
      throw new LeaseLostError('fenced out');
  };
  await emit({ type: 'status', state: 'processing', replyTo: messageId });
  await emit({ type: 'reply.start', replyTo: messageId, agent });

  const timeout = AbortSignal.timeout(ctx.settings.jobTimeoutMs);
  const signal = AbortSignal.any([job.signal, timeout]);
  const coalescer = new DeltaCoalescer(ctx.settings.deltaFlushMs, (text) =>
    emit({ type: 'reply.delta', replyTo: messageId, agent, text }),
  );
  const turns: HistoryTurn[] = [{ role: 'user', content: record.text, id: messageId }];
  const started = performance.now();
  let final: ReplyEndEvent | SessionErrorEvent;
  let outcome: AnswerOutcome;
  try {
    const history = await ctx.inbox.history(sessionId);
    const messages = buildPrompt(
      ctx.knowledge,
      history,
      record.text,
      ctx.settings.historyMaxMessages,
    );
    let text = '';
    let usage: ReplyEndEvent['usage'];
    let firstToken = true;
    for await (const chunk of ctx.model.stream({ messages, signal })) {
      if (chunk.kind === 'usage') {
        usage = { inputTokens: chunk.inputTokens, outputTokens: chunk.outputTokens };
        continue;
      }
      if (firstToken)
        ctx.metrics.llmFirstToken(agent, ctx.model.model, (performance.now() - started) / 1000);
      firstToken = false;
      text += chunk.text;
      coalescer.push(chunk.text);
    }
    await coalescer.flush();
    ctx.metrics.llmCall(agent, ctx.model.model, 'ok', (performance.now() - started) / 1000);
    if (usage) ctx.metrics.llmTokens(agent, ctx.model.model, usage.inputTokens, usage.outputTokens);
    final = {
      type: 'reply.end',
      replyTo: messageId,
      agent,
      agents: [agent],
      text,
      ...(ctx.model.offline ? { offline: true } : {}),
      ...(usage ? { usage } : {}),
    };
    turns.push({ role: 'assistant', content: text, id: messageId });
    outcome = 'completed';
  } catch (error) {
    coalescer.discard();
    if (error instanceof LeaseLostError || job.signal.reason instanceof LeaseLostError)
      throw job.signal.reason ?? error;
    if (job.signal.aborted) throw job.signal.reason;
    const failure = classify(error, timeout.aborted);
    ctx.metrics.llmCall(
      agent,
      ctx.model.model,
      timeout.aborted ? 'timeout' : 'error',
      (performance.now() - started) / 1000,
    );
    ctx.log.warn({ err: error, sessionId, messageId, code: failure.code }, 'answer failed');
    final = { type: 'error', code: failure.code, message: failure.message, replyTo: messageId };
    outcome = failure.code === 'llm_unavailable' ? 'llm_unavailable' : 'failed';
  }
  const finished = await ctx.inbox.finish(sessionId, fence, messageId, final, turns);
  if (!finished) throw new LeaseLostError('fenced out at finish');
  return { outcome, waiting: finished.waiting };
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
