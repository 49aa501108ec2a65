import { setTimeout as sleep } from 'node:timers/promises';
import type { KnowledgeBase } from '../knowledge/knowledge-base.js';
import type { ChatModel, ChatRequest, ModelChunk } from './chat-model.js';

/**
 * Answers from the knowledge graph without any model, streaming word by word like one,
 * and says plainly that it is offline.
 */
export class OfflineModel implements ChatModel {
  readonly offline = true;
  readonly model = 'offline';

  constructor(
    private readonly knowledge: KnowledgeBase,
    private readonly chunkDelayMs: number,
  ) {}

  async *stream(request: ChatRequest): AsyncIterable<ModelChunk> {
    const question = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const answer = this.compose(question);
    const pieces = answer.match(/\S+\s*/g) ?? [answer];
    for (const piece of pieces) {
      if (this.chunkDelayMs > 0)
        await sleep(this.chunkDelayMs, undefined, { signal: request.signal });
      request.signal.throwIfAborted();
      yield { kind: 'text', text: piece };
    }
    yield { kind: 'usage', inputTokens: 0, outputTokens: pieces.length };
  }

  private compose(question: string): string {
    const intro =
      '[offline mode: no language model is configured, so this answer comes straight from the knowledge graph] ';
    const hits = this.knowledge.search(question, 3);
    if (hits.length === 0) {
      return `${intro}I found no concept in the knowledge graph that matches your message. Try naming a topic, such as "binary search", "TCP" or "hash table".`;
    }
    const parts = hits.map(({ node, related }) => {
      const seeAlso =
        related.length > 0
          ? ` Related: ${related
              .slice(0, 4)
              .map((n) => n.label)
              .join(', ')}.`
          : '';
      return `${node.label} (${node.type}): ${node.description ?? 'no description yet.'}${seeAlso}`;
    });
    return `${intro}${parts.join('\n\n')}`;
  }
}
