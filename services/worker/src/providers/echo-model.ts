import type { ChatModel, ChatRequest, ModelChunk } from './chat-model.js';

/**
 * A fixed-cost stand-in for a model, for benchmarks only: repeats the message in `deltas`
 * pieces, at once. Like the offline provider it is no model (no routing, no tools).
 */
export class EchoModel implements ChatModel {
  readonly offline = true;
  readonly model = 'echo';
  readonly readsContext = false;

  constructor(private readonly deltas: number) {}

  // eslint-disable-next-line @typescript-eslint/require-await -- an async generator by contract
  async *stream(request: ChatRequest): AsyncIterable<ModelChunk> {
    if (request.offlineStyle === 'none') return;
    const question = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    for (let i = 0; i < this.deltas; i++) {
      request.signal.throwIfAborted();
      yield { kind: 'text', text: i === 0 ? `echo: ${question}` : ` ${i}` };
    }
    yield { kind: 'usage', inputTokens: 0, outputTokens: this.deltas };
  }
}
