import type { LlmOutcome } from '@chorus/observability';
import {
  ModelUnavailableError,
  type ChatRequest,
  type ModelObserver,
  type ToolCall,
} from '../providers/chat-model.js';
import type { WorkerContext } from '../worker-context.js';

/** What one model call produced, and what it cost. */
export interface ModelResult {
  text: string;
  calls: ToolCall[];
  inputTokens: number;
  outputTokens: number;
}

/**
 * One streamed model call, measured: time to first token, duration by outcome, tokens. Every
 * model call of the team goes through here, so the metrics see all of them.
 */
export async function callModel(
  ctx: WorkerContext,
  request: ChatRequest,
  observer: ModelObserver,
  onText?: (text: string) => void,
): Promise<ModelResult> {
  const model = request.model ?? ctx.model.model;
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const result: ModelResult = { text: '', calls: [], inputTokens: 0, outputTokens: 0 };
  try {
    for await (const chunk of ctx.model.stream(request, observer)) {
      if (chunk.kind === 'text') {
        if (result.text === '') ctx.metrics.llmFirstToken(request.agent, model, seconds());
        result.text += chunk.text;
        onText?.(chunk.text);
      } else if (chunk.kind === 'tool_calls') {
        result.calls = chunk.calls;
      } else {
        result.inputTokens += chunk.inputTokens;
        result.outputTokens += chunk.outputTokens;
      }
    }
  } catch (error) {
    ctx.metrics.llmCall(request.agent, model, outcomeOf(error, request.signal), seconds());
    throw error;
  } finally {
    ctx.metrics.llmTokens(request.agent, model, result.inputTokens, result.outputTokens);
  }
  ctx.metrics.llmCall(request.agent, model, 'ok', seconds());
  return result;
}

function outcomeOf(error: unknown, signal: AbortSignal): LlmOutcome {
  if (error instanceof ModelUnavailableError && error.timedOut) return 'timeout';
  return signal.aborted ? 'aborted' : 'error';
}
