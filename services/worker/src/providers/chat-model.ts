export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  messages: ChatMessage[];
  signal: AbortSignal;
}

export type ModelChunk =
  { kind: 'text'; text: string } | { kind: 'usage'; inputTokens: number; outputTokens: number };

/** A streaming chat model; the agent team only ever sees this. */
export interface ChatModel {
  /** The model's name, as metrics label it. */
  readonly model: string;
  /** True for the offline provider, which answers without any model. */
  readonly offline: boolean;
  stream(request: ChatRequest): AsyncIterable<ModelChunk>;
}

/** The model could not answer (after the SDK's retries): the client gets `llm_unavailable`. */
export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
