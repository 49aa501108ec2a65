import { setTimeout as sleep } from 'node:timers/promises';
import type { KnowledgeBase } from '../knowledge/knowledge-base.js';
import type { ChatModel, ChatRequest, ModelChunk } from './chat-model.js';

export const OFFLINE_NOTICE =
  '[offline mode: no language model is configured, so this answer comes straight from the knowledge graph] ';

/**
 * Answers from the knowledge graph without any model, streaming word by word like one, and
 * says plainly that it is offline. Each agent's `offline` style picks what it says.
 */
export class OfflineModel implements ChatModel {
  readonly offline = true;
  readonly model = 'offline';
  readonly readsContext = false;

  constructor(
    private readonly knowledge: KnowledgeBase,
    private readonly chunkDelayMs: number,
  ) {}

  async *stream(request: ChatRequest): AsyncIterable<ModelChunk> {
    const question = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const answer = this.compose(question, request.offlineStyle ?? 'explain');
    const pieces = answer.match(/\S+\s*/g) ?? [];
    for (const piece of pieces) {
      if (this.chunkDelayMs > 0)
        await sleep(this.chunkDelayMs, undefined, { signal: request.signal });
      request.signal.throwIfAborted();
      yield { kind: 'text', text: piece };
    }
    yield { kind: 'usage', inputTokens: 0, outputTokens: pieces.length };
  }

  private compose(question: string, style: 'explain' | 'relations' | 'none'): string {
    if (style === 'none') return '';
    const hits = this.knowledge.search(question, 3);
    if (style === 'relations') {
      const lines = hits
        .filter((hit) => hit.related.length > 0)
        .map(
          (hit) =>
            `${hit.node.label} connects to: ${hit.related
              .slice(0, 6)
              .map((n) => n.label)
              .join(', ')}.`,
        );
      return lines.length > 0 ? `[offline] From the knowledge graph: ${lines.join(' ')}` : '';
    }
    if (hits.length === 0) {
      return `${OFFLINE_NOTICE}I found no concept in the knowledge graph that matches your message. Try naming a topic, such as "binary search", "TCP" or "hash table".`;
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
    return `${OFFLINE_NOTICE}${parts.join('\n\n')}`;
  }
}
