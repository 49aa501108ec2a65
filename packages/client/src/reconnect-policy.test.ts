import { describe, expect, it } from 'vitest';
import { nextStepAfterClose } from './reconnect-policy.js';

describe('nextStepAfterClose', () => {
  it('follows the close codes of the protocol', () => {
    expect(nextStepAfterClose(1001)).toBe('now');
    expect(nextStepAfterClose(4001)).toBe('halt');
    expect(nextStepAfterClose(4401)).toBe('new-session');
    for (const code of [1000, 1006, 1009, 1011, 1013, 4408, 4429]) {
      expect(nextStepAfterClose(code)).toBe('backoff');
    }
  });
});
