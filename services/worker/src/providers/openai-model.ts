import { AsyncLocalStorage } from 'node:async_hooks';
import OpenAI from 'openai';
import CircuitBreaker from 'opossum';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import {
  ModelUnavailableError,
  type ChatMessage,
  type ChatModel,
  type ChatRequest,
  type ModelChunk,
  type ModelObserver,
  type ToolCall,
} from './chat-model.js';

export interface OpenAIModelOptions {
  apiKey: string;
  baseURL?: string;
  model: string;
  timeoutMs: number;
  maxRetries: number;
  breaker: { volumeThreshold: number; resetTimeoutMs: number };
  onBreakerState?: (state: 'open' | 'half-open' | 'closed') => void;
}

/** Per request: counts HTTP attempts so that retries become visible. */
interface Attempts {
  count: number;
  lastOutcome: string;
  observer?: ModelObserver;
}

/**
 * Any OpenAI-compatible server through the official SDK, streaming, with tools. The SDK retries
 * 408/409/429/5xx and connection errors with jittered backoff, honouring Retry-After, and never
 * retries other 4xx; what still fails counts towards a circuit breaker (opossum) that, once
 * open, fails calls at once until a half-open probe succeeds.
 */
export class OpenAIModel implements ChatModel {
  readonly offline = false;
  readonly model: string;
  private readonly client: OpenAI;
  private readonly attempts = new AsyncLocalStorage<Attempts>();
  private readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;

  constructor(options: OpenAIModelOptions) {
    this.model = options.model;
    this.client = new OpenAI({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries,
      fetch: (url, init) => this.observedFetch(url, init),
    });
    this.breaker = new CircuitBreaker((call: () => Promise<unknown>) => call(), {
      timeout: false,
      errorThresholdPercentage: 50,
      volumeThreshold: options.breaker.volumeThreshold,
      resetTimeout: options.breaker.resetTimeoutMs,
      rollingCountTimeout: 30_000,
      // Cancellations and requests the server rejects as wrong say nothing about its health.
      errorFilter: (error: unknown) => {
        if (error instanceof OpenAI.APIUserAbortError) return true;
        const status: unknown = error instanceof OpenAI.APIError ? error.status : undefined;
        return typeof status === 'number' && status < 500 && ![408, 409, 429].includes(status);
      },
    });
    const report = (state: 'open' | 'half-open' | 'closed') => () => {
      options.onBreakerState?.(state);
      this.attempts.getStore()?.observer?.breaker(state);
    };
    this.breaker.on('open', report('open'));
    this.breaker.on('halfOpen', report('half-open'));
    this.breaker.on('close', report('closed'));
  }

  async *stream(request: ChatRequest, observer?: ModelObserver): AsyncIterable<ModelChunk> {
    const attempts: Attempts = { count: 0, lastOutcome: '', ...(observer ? { observer } : {}) };
    let stream;
    try {
      stream = await this.attempts.run(attempts, () =>
        this.breaker.fire(() =>
          this.client.chat.completions.create(
            {
              model: request.model ?? this.model,
              messages: request.messages.map(toOpenAI),
              stream: true,
              stream_options: { include_usage: true },
              ...(request.tools?.length
                ? { tools: request.tools.map((t) => ({ type: 'function' as const, function: t })) }
                : {}),
              ...(request.requireTool
                ? {
                    tool_choice: {
                      type: 'function' as const,
                      function: { name: request.requireTool },
                    },
                  }
                : {}),
            },
            { signal: request.signal },
          ),
        ),
      );
    } catch (error) {
      throw asUnavailable(error);
    }
    const calls = new Map<number, ToolCall>();
    try {
      for await (const chunk of stream as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
        const delta = chunk.choices[0]?.delta;
        if (delta?.content) yield { kind: 'text', text: delta.content };
        for (const part of delta?.tool_calls ?? []) {
          const call = calls.get(part.index) ?? { id: '', name: '', arguments: '' };
          call.id ||= part.id ?? '';
          call.name += part.function?.name ?? '';
          call.arguments += part.function?.arguments ?? '';
          calls.set(part.index, call);
        }
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
    if (calls.size > 0) yield { kind: 'tool_calls', calls: [...calls.values()] };
  }

  private async observedFetch(url: string | URL | Request, init?: RequestInit): Promise<Response> {
    const attempts = this.attempts.getStore();
    if (attempts) {
      attempts.count++;
      if (attempts.count > 1) attempts.observer?.retry(attempts.lastOutcome, attempts.count - 1);
    }
    try {
      const response = await fetch(url, init);
      if (attempts) attempts.lastOutcome = `HTTP ${response.status}`;
      return response;
    } catch (error) {
      if (attempts) attempts.lastOutcome = 'network error';
      throw error;
    }
  }
}

function toOpenAI(message: ChatMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls?.length
          ? {
              tool_calls: message.toolCalls.map((c) => ({
                id: c.id,
                type: 'function' as const,
                function: { name: c.name, arguments: c.arguments },
              })),
            }
          : {}),
      };
    default:
      return { role: message.role, content: message.content };
  }
}

/** API, connection and breaker failures mean the model is unavailable; anything else is our bug. */
function asUnavailable(error: unknown): unknown {
  if (error instanceof OpenAI.APIUserAbortError) return error;
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new ModelUnavailableError('model request timed out', { cause: error }, true);
  }
  if (error instanceof OpenAI.APIError) {
    const status = error.status === undefined ? 'no response' : `HTTP ${error.status}`;
    return new ModelUnavailableError(`model request failed (${status})`, { cause: error });
  }
  if ((error as { code?: unknown } | null)?.code === 'EOPENBREAKER') {
    return new ModelUnavailableError('model circuit is open: failing fast', { cause: error });
  }
  return error;
}
