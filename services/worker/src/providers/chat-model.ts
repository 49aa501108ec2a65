import type { ToolSpec } from '../knowledge/graph-tools.js';

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as the model wrote it (validated by the tool, not here). */
  arguments: string;
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

/** What the model is asked to do for one agent turn. */
export interface ChatRequest {
  /** The agent's name, for metrics and logs. */
  agent: string;
  /** A model other than the provider's default. */
  model?: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** Forces a call of this tool. */
  requireTool?: string;
  /** For the offline provider: how to answer without a model. */
  offlineStyle?: 'explain' | 'relations' | 'none';
  signal: AbortSignal;
}

export type ModelChunk =
  | { kind: 'text'; text: string }
  | { kind: 'tool_calls'; calls: ToolCall[] }
  | { kind: 'usage'; inputTokens: number; outputTokens: number };

/** Things the model client noticed during a request: retries and breaker changes. */
export interface ModelObserver {
  retry(reason: string, attempt: number): void;
  breaker(state: 'open' | 'half-open' | 'closed'): void;
}

/** A streaming chat model; the agent team only ever sees this. */
export interface ChatModel {
  /** The default model's name, as metrics label it. */
  readonly model: string;
  /** True for the offline provider, which answers without any model. */
  readonly offline: boolean;
  /**
   * False for providers that read only the last user message (offline, echo): the worker then
   * reads no history and looks up no graph notes for their prompts. Default true.
   */
  readonly readsContext?: boolean;
  stream(request: ChatRequest, observer?: ModelObserver): AsyncIterable<ModelChunk>;
}

/** The model could not answer (after retries, or with the breaker open): `llm_unavailable`. */
export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError';
  constructor(
    message: string,
    options?: { cause?: unknown },
    /** The request hit LLM_TIMEOUT_MS (on every attempt). */
    readonly timedOut = false,
  ) {
    super(message, options);
  }
}
