import type {
  ErrorCode,
  ReplyEndEvent,
  SessionErrorEvent,
  SessionEventBody,
} from '@chorus/protocol';
import type { HistoryTurn, MessageRecord } from '@chorus/state';
import { DeltaCoalescer } from './delta-coalescer.js';
import { EventWriter } from './event-writer.js';
import { LeaseLostError } from './lease-keeper.js';
import {
  ModelUnavailableError,
  type ChatMessage,
  type ModelObserver,
} from './providers/chat-model.js';
import { AnswerStopped, type StopScope } from './stop-signals.js';
import { AgentLog } from './team/agent-log.js';
import { fitHistory } from './team/memory.js';
import { routeMessage } from './team/routing.js';
import { runAgent } from './team/run-agent.js';
import type { AgentSpec } from './team/team-config.js';
import type { WorkerContext } from './worker-context.js';

export interface Assignment {
  sessionId: string;
  fence: number;
  messageId: string;
  record: MessageRecord;
  /** The client asked to stop this message before it started (read when it was claimed). */
  cancelRequested: boolean;
  /** The conversation so far (empty for a model that reads no context). */
  history: HistoryTurn[];
  /** Aborts when the lease is lost or the worker gives the job back. */
  stop: StopScope;
  /** Called when events are written before the final step (the answer takes several steps). */
  onStep?: () => void;
}

export type AnswerOutcome =
  'completed' | 'cancelled' | 'llm_unavailable' | 'rate_limited' | 'failed';

/** What the team has said so far: one reply, several voices. */
interface Reply {
  lead: string;
  agents: string[];
  text: string;
  inputTokens: number;
  outputTokens: number;
}

/**
 * Answers one message with the team: the coordinator routes, the lead streams the reply, helpers
 * that speak add to it, silent ones act; `reply.end` (also when cancelled or abandoned) or
 * `error` comes in the same atomic step that marks the message done.
 * Throws LeaseLostError when fenced out, and the job's abort reason when it is handed back.
 */
export async function answerMessage(
  ctx: WorkerContext,
  job: Assignment,
): Promise<{ outcome: AnswerOutcome; waiting: number }> {
  const { sessionId, fence, messageId, record } = job;
  // Events are queued, not awaited one by one: the writer appends them in order, several per step.
  const writer = new EventWriter((bodies) => {
    job.onStep?.();
    return ctx.events.appendManyAsLeaseHolder(sessionId, fence, bodies);
  });
  const emit = (body: SessionEventBody) => writer.push(body);
  const log = new AgentLog(emit, ctx.settings.agentLogMax);
  const coordinator = ctx.team.coordinator.name;
  const observer = observeModel(ctx, log);
  // One scope per answer, aborted by the job's (lease lost, shutdown), a cancel, nobody
  // connected for the grace period, or the job timeout; the flags say which.
  const scope = job.stop.child();
  const signal = scope.signal;
  const stopped = { cancelled: false, abandoned: false };
  let timedOut = false;
  const stopWith = (reason: AnswerStopped) => {
    stopped[reason.why] = true;
    scope.abort(reason);
  };
  const cancel = ctx.cancels.watch(sessionId, messageId, stopWith);
  const abandon = ctx.abandonment.watch(sessionId, stopWith);
  const timeout = setTimeout(() => {
    timedOut = true;
    scope.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  }, ctx.settings.jobTimeoutMs);
  const reply: Reply = {
    lead: ctx.team.defaultLead,
    agents: [],
    text: '',
    inputTokens: 0,
    outputTokens: 0,
  };
  const turns: HistoryTurn[] = [{ role: 'user', content: record.text, id: messageId }];
  let final: ReplyEndEvent | SessionErrorEvent;
  /** The events still queued, for the final step. */
  let before: string[] | null = null;
  let outcome: AnswerOutcome;
  try {
    emit({ type: 'status', state: 'processing', replyTo: messageId });
    if (!ctx.model.offline && (await ctx.budget.exhausted(sessionId))) throw new BudgetSpent();
    const history = fitHistory(job.history, ctx.settings.historyTokenBudget);
    const route = await routeMessage(ctx, record.text, signal, log, observer, reply);
    const helpers = route.support.map((a) => a.name).join(', ');
    log.write(
      coordinator,
      'info',
      'routing',
      `${route.lead.name} leads${helpers ? `; ${helpers} help` : ''} (by ${route.by})`,
    );
    reply.lead = route.lead.name;
    emit({ type: 'reply.start', replyTo: messageId, agent: reply.lead });
    if (job.cancelRequested) throw new AnswerStopped('cancelled');

    const speak = (agent: AgentSpec, prompt: ChatMessage[]) =>
      speakInto(ctx, reply, agent, prompt, { emit, log, observer, signal, messageId });
    await speak(route.lead, promptFor(ctx, route.lead, history, record.text));
    for (const helper of route.support) {
      try {
        if (helper.speaks) await speak(helper, promptFor(ctx, helper, history, record.text, reply));
        else
          await act(ctx, reply, helper, promptFor(ctx, helper, history, record.text, reply), {
            log,
            observer,
            signal,
          });
      } catch (error) {
        if (signal.aborted || error instanceof LeaseLostError) throw error;
        log.write(helper.name, 'warn', 'failure', `could not help: ${describe(error)}`);
      }
    }
    log.close(coordinator);
    // Surfaces a failed write before the answer is called complete; hands over what is queued.
    before = await writer.drain();
    final = replyEnd(ctx, messageId, reply, {
      ...(reply.outputTokens > 0
        ? { usage: { inputTokens: reply.inputTokens, outputTokens: reply.outputTokens } }
        : {}),
    });
    turns.push({ role: 'assistant', content: reply.text, id: messageId });
    outcome = 'completed';
  } catch (error) {
    if (error instanceof LeaseLostError) throw error;
    if (job.stop.aborted) throw job.stop.reason;
    if (stopped.cancelled || stopped.abandoned || error instanceof AnswerStopped) {
      // What was streamed stands: the deltas sent so far equal the final text.
      log.write(
        coordinator,
        'info',
        'stop',
        stopped.abandoned && !stopped.cancelled
          ? 'stopped: nobody is connected'
          : 'stopped: cancelled',
      );
      log.close(coordinator);
      final = replyEnd(ctx, messageId, reply, { cancelled: true });
      if (reply.text) turns.push({ role: 'assistant', content: reply.text, id: messageId });
      outcome = 'cancelled';
    } else {
      const failure = classify(error, timedOut);
      ctx.log.warn({ err: error, sessionId, messageId, code: failure.code }, 'answer failed');
      log.write(coordinator, 'error', 'failure', failure.message);
      try {
        log.close(coordinator);
      } catch {
        // the answer ends with an error anyway
      }
      final = { type: 'error', code: failure.code, message: failure.message, replyTo: messageId };
      outcome =
        failure.code === 'llm_unavailable' || failure.code === 'rate_limited'
          ? failure.code
          : 'failed';
    }
  } finally {
    cancel.release();
    abandon.release();
    clearTimeout(timeout);
    scope.release();
  }
  if (!ctx.model.offline) {
    await ctx.budget
      .spend(sessionId, reply.inputTokens + reply.outputTokens)
      .catch((error: unknown) => {
        ctx.log.warn({ err: error, sessionId }, 'could not record the tokens spent');
      });
  }
  // What is still queued goes in the final step, before the final event. After a failed write,
  // an error ending drops it (nothing is written after a failure); any other ending needs it.
  const endsInError = final.type === 'error';
  before ??= await writer.drain().catch((error: unknown) => {
    if (endsInError && !(error instanceof LeaseLostError)) return [];
    throw error;
  });
  const finished = await ctx.inbox.finish(sessionId, fence, messageId, final, turns, before);
  if (!finished) throw new LeaseLostError('fenced out at finish');
  return { outcome, waiting: finished.waiting };
}

interface SpeakIO {
  emit: (body: SessionEventBody) => void;
  log: AgentLog;
  observer: ModelObserver;
  signal: AbortSignal;
  messageId: string;
}

/** Streams one agent's part of the reply as coalesced deltas that name it. */
async function speakInto(
  ctx: WorkerContext,
  reply: Reply,
  agent: AgentSpec,
  prompt: ChatMessage[],
  io: SpeakIO,
): Promise<void> {
  const coalescer = new DeltaCoalescer(ctx.settings.deltaFlushMs, (text) =>
    io.emit({ type: 'reply.delta', replyTo: io.messageId, agent: agent.name, text }),
  );
  let first = true;
  try {
    const turn = await runAgent(ctx, agent, prompt, {
      ...io,
      onText: (text) => {
        const piece = first && reply.text ? `\n\n${text}` : text;
        first = false;
        if (!reply.agents.includes(agent.name)) reply.agents.push(agent.name);
        reply.text += piece;
        coalescer.push(piece);
      },
    });
    reply.inputTokens += turn.inputTokens;
    reply.outputTokens += turn.outputTokens;
  } finally {
    // Whatever was streamed is sent, so that the deltas always add up to the reply's text.
    coalescer.flush();
  }
}

/** A helper that does not speak: it acts (tools) and reports in agent.log. */
async function act(
  ctx: WorkerContext,
  reply: Reply,
  agent: AgentSpec,
  prompt: ChatMessage[],
  io: Omit<SpeakIO, 'emit' | 'messageId'>,
): Promise<void> {
  const turn = await runAgent(ctx, agent, prompt, io);
  reply.inputTokens += turn.inputTokens;
  reply.outputTokens += turn.outputTokens;
  const summary =
    turn.text.trim() || (ctx.model.offline ? 'offline: nothing to do without a model' : 'done');
  io.log.write(agent.name, 'info', 'summary', summary);
}

/** System prompt with graph notes, the history that fits, the message; helpers see the reply so far. */
function promptFor(
  ctx: WorkerContext,
  agent: AgentSpec,
  history: ChatMessage[],
  text: string,
  reply?: Reply,
): ChatMessage[] {
  // A model that reads only the message (offline, echo) gets no graph notes.
  const hits = ctx.model.readsContext === false ? [] : ctx.knowledge.search(text, 5);
  const notes = hits
    .map(({ node }) => `- ${node.id}: ${node.label} (${node.type}): ${node.description ?? ''}`)
    .join('\n');
  const system = notes
    ? `${agent.systemPrompt}\n\nKnowledge-graph notes:\n${notes}`
    : agent.systemPrompt;
  const prompt: ChatMessage[] = [
    { role: 'system', content: system },
    ...history,
    { role: 'user', content: text },
  ];
  if (reply?.text) {
    prompt.push(
      { role: 'assistant', content: reply.text },
      {
        role: 'system',
        content: `${reply.lead} answered above. You are the ${agent.name}: ${agent.role} Add only what is missing, briefly.`,
      },
    );
  }
  return prompt;
}

/** Retries and breaker changes become agent.log lines of the message that met them. */
function observeModel(ctx: WorkerContext, log: AgentLog): ModelObserver {
  const coordinator = ctx.team.coordinator.name;
  return {
    retry: (reason, attempt) => {
      ctx.metrics.llmRetry(ctx.model.model, reason);
      log.write(coordinator, 'warn', 'retry', `model call failed (${reason}); retry ${attempt}`);
    },
    breaker: (state) =>
      log.write(
        coordinator,
        state === 'closed' ? 'info' : 'warn',
        'breaker',
        `model circuit ${state}`,
      ),
  };
}

function replyEnd(
  ctx: WorkerContext,
  messageId: string,
  reply: Reply,
  extra: Pick<ReplyEndEvent, 'usage' | 'cancelled'>,
): ReplyEndEvent {
  return {
    type: 'reply.end',
    replyTo: messageId,
    agent: reply.lead,
    agents: reply.agents.length > 0 ? reply.agents : [reply.lead],
    text: reply.text,
    ...extra,
    ...(ctx.model.offline ? { offline: true } : {}),
  };
}

const describe = (error: unknown) =>
  error instanceof ModelUnavailableError ? 'the model is unavailable' : 'an internal error';

/** What the client is told; never a stack trace or internal detail. */
function classify(error: unknown, timedOut: boolean): { code: ErrorCode; message: string } {
  if (error instanceof BudgetSpent) return { code: 'rate_limited', message: error.message };
  if (timedOut) return { code: 'llm_unavailable', message: 'the model did not answer in time' };
  if (error instanceof ModelUnavailableError) {
    return {
      code: 'llm_unavailable',
      message: 'the model is unavailable right now; please try again',
    };
  }
  return { code: 'internal', message: 'something went wrong while answering; please try again' };
}

/** The session spent its model tokens for this hour (MODEL_TOKENS_PER_SESSION_PER_HOUR). */
class BudgetSpent extends Error {
  override readonly name = 'BudgetSpent';
  constructor() {
    super('this session has used its model tokens for this hour; please try again later');
  }
}
