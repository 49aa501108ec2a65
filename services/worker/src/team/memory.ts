import type { HistoryTurn } from '@chorus/state';
import type { ChatMessage } from '../providers/chat-model.js';

/** A rough token count (about four characters a token), enough to keep prompts in budget. */
export const estimateTokens = (text: string) => Math.ceil(text.length / 4) + 4;

/**
 * The conversation that fits in `budget` tokens: the newest turns, whole; the oldest are
 * dropped first (Redis keeps the last HISTORY_MAX_MESSAGES turns regardless).
 */
export function fitHistory(turns: HistoryTurn[], budget: number): ChatMessage[] {
  const kept: ChatMessage[] = [];
  let used = 0;
  for (let i = turns.length - 1; i >= 0; i--) {
    const turn = turns[i]!;
    used += estimateTokens(turn.content);
    if (used > budget) break;
    kept.unshift({ role: turn.role, content: turn.content });
  }
  return kept;
}
