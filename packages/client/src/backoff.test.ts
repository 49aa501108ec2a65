import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  const options = { baseMs: 250, capMs: 10_000 };

  it('draws from [0, min(cap, base · 2^attempt)): full jitter', () => {
    expect(backoffDelay(0, options, () => 0)).toBe(0);
    expect(backoffDelay(0, options, () => 0.5)).toBe(125);
    expect(backoffDelay(3, options, () => 0.5)).toBe(1000);
    for (let attempt = 0; attempt < 8; attempt++) {
      const ceiling = Math.min(10_000, 250 * 2 ** attempt);
      expect(backoffDelay(attempt, options, () => 0.999_999_9)).toBeLessThan(ceiling);
      expect(backoffDelay(attempt, options, () => 0.999_999_9)).toBeGreaterThanOrEqual(ceiling - 1);
    }
  });

  it('never exceeds the cap, however many attempts', () => {
    for (const attempt of [6, 10, 40, 1000, Number.MAX_SAFE_INTEGER]) {
      expect(backoffDelay(attempt, options, () => 0.999_999_9)).toBeLessThan(10_000);
    }
  });

  it('survives a random() outside [0, 1)', () => {
    expect(backoffDelay(2, options, () => 1)).toBeLessThan(1000);
    expect(backoffDelay(2, options, () => -3)).toBe(0);
  });

  it('spreads real random delays over the whole window', () => {
    const delays = Array.from({ length: 2000 }, () => backoffDelay(2, options));
    expect(Math.min(...delays)).toBeLessThan(100);
    expect(Math.max(...delays)).toBeGreaterThan(900);
    expect(Math.max(...delays)).toBeLessThan(1000);
  });
});
