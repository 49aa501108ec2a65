import OpenAI from 'openai';
import {
  ModelUnavailableError,
  type ChatModel,
  type ChatRequest,
  type ModelChunk,
} from './chat-model.js';

export interface OpenAIModelOptions {
  apiKey: string;
  baseURL?: string;
  model: string;
  timeoutMs: number;
  maxRetries: number;
}

/**
 * Any OpenAI-compatible server through the official SDK, streaming. The SDK retries 408/409/429/5xx
 * and connection errors with backoff, honouring Retry-After; what still fails is "unavailable".
 */
export class OpenAIModel implements ChatModel {
  readonly offline = false;
  readonly model: string;
  private readonly client: OpenAI;

  constructor(options: OpenAIModelOptions) {
    this.model = options.model;
    this.client = new OpenAI({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries,
    });
  }

  async *stream(request: ChatRequest): AsyncIterable<ModelChunk> {
    let stream;
    try {
      stream = await this.client.chat.completions.create(
        {
          model: this.model,
          messages: request.messages,
          stream: true,
          stream_options: { include_usage: true },
        },
        { signal: request.signal },
      );
    } catch (error) {
      throw asUnavailable(error);
    }
    try {
      for await (const chunk of stream) {
        const text = chunk.choices[0]?.delta?.content;
        if (text) yield { kind: 'text', text };
        if (chunk.usage) {
          yield {
            kind: 'usage',
            inputTokens: chunk.usage.prompt_tokens,
            outputTokens: chunk.usage.completion_tokens,
          };
        }
      }
    } catch (error) {
      throw asUnavailable(error);
    }
  }
}

/** API and connection failures mean the model is unavailable; anything else is our bug. */
function asUnavailable(error: unknown): unknown {
  if (error instanceof OpenAI.APIUserAbortError) return error;
  if (error instanceof OpenAI.APIError) {
    const status = error.status === undefined ? 'no response' : `HTTP ${error.status}`;
    return new ModelUnavailableError(`model request failed (${status})`, { cause: error });
  }
  return error;
}
