import type { KnowledgeBase } from './knowledge/knowledge-base.js';
import type { ChatMessage } from './providers/chat-model.js';
import type { HistoryTurn } from '@chorus/state';

/** The one agent of this version: a tutor that grounds its answers in the knowledge graph. */
export const TUTOR = {
  name: 'tutor',
  systemPrompt:
    'You are the tutor of Chorus, a computer-science learning assistant. Explain clearly and ' +
    'concisely, with a short example where it helps. Use the knowledge-graph notes below when they ' +
    'are relevant, and say so when you are unsure.',
} as const;

export const AGENT_COUNT = 1;

/** The prompt for one message: system, graph notes, the conversation so far, the message. */
export function buildPrompt(
  knowledge: KnowledgeBase,
  history: HistoryTurn[],
  text: string,
  maxHistory: number,
): ChatMessage[] {
  const notes = knowledge
    .search(text, 5)
    .map(({ node }) => `- ${node.label} (${node.type}): ${node.description ?? ''}`)
    .join('\n');
  const system = notes
    ? `${TUTOR.systemPrompt}\n\nKnowledge-graph notes:\n${notes}`
    : TUTOR.systemPrompt;
  return [
    { role: 'system', content: system },
    ...history.slice(-maxHistory).map((turn) => ({ role: turn.role, content: turn.content })),
    { role: 'user', content: text },
  ];
}
