import { describe, expect, it } from 'vitest';
import { estimateTokens, fitHistory } from './memory.js';

const turn = (role: 'user' | 'assistant', content: string, id = 'm') => ({ role, content, id });

describe('fitHistory', () => {
  it('keeps the newest whole turns that fit the budget, dropping the oldest first', () => {
    const turns = [
      turn('user', 'a'.repeat(400)),
      turn('assistant', 'b'.repeat(40)),
      turn('user', 'c'.repeat(40)),
    ];
    const small = estimateTokens('b'.repeat(40)) + estimateTokens('c'.repeat(40));
    expect(fitHistory(turns, small)).toEqual([
      { role: 'assistant', content: 'b'.repeat(40) },
      { role: 'user', content: 'c'.repeat(40) },
    ]);
    expect(fitHistory(turns, 10_000)).toHaveLength(3);
  });

  it('never cuts a turn in half and keeps nothing when even the newest is too large', () => {
    expect(fitHistory([turn('user', 'x'.repeat(4_000))], 100)).toEqual([]);
    expect(fitHistory([], 100)).toEqual([]);
  });
});
