import type { WorkerConfig } from '@chorus/config';
import type { KnowledgeBase } from '../knowledge/knowledge-base.js';
import type { ChatModel } from './chat-model.js';
import { EchoModel } from './echo-model.js';
import { OfflineModel } from './offline-model.js';
import { OpenAIModel } from './openai-model.js';

/** MODEL_PROVIDER `auto`: the OpenAI-compatible server when a key is set, else offline. */
export function createModel(
  config: WorkerConfig,
  knowledge: KnowledgeBase,
  onBreakerState: (state: 'open' | 'half-open' | 'closed') => void,
): ChatModel {
  const provider =
    config.MODEL_PROVIDER === 'auto'
      ? config.OPENAI_API_KEY
        ? 'openai'
        : 'offline'
      : config.MODEL_PROVIDER;
  switch (provider) {
    case 'echo':
      return new EchoModel(config.ECHO_DELTAS);
    case 'offline':
      return new OfflineModel(knowledge, config.OFFLINE_CHUNK_DELAY_MS);
    case 'openai':
      return new OpenAIModel({
        apiKey: config.OPENAI_API_KEY ?? '',
        baseURL: config.OPENAI_BASE_URL,
        model: config.OPENAI_MODEL,
        timeoutMs: config.LLM_TIMEOUT_MS,
        maxRetries: config.LLM_MAX_RETRIES,
        breaker: {
          volumeThreshold: config.LLM_BREAKER_THRESHOLD,
          resetTimeoutMs: config.LLM_BREAKER_RESET_MS,
        },
        onBreakerState,
      });
  }
}
