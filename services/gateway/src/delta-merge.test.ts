import { describe, expect, it } from 'vitest';
import { mergeDeltas } from './delta-merge.js';

const delta = (replyTo: string, text: string, agent = 'tutor') =>
  JSON.stringify({ type: 'reply.delta', replyTo, agent, text });

describe('mergeDeltas', () => {
  it('joins the text of two deltas of one reply and agent, in order', () => {
    expect(JSON.parse(mergeDeltas(delta('m1', 'Hello, '), delta('m1', 'world'))!)).toEqual({
      type: 'reply.delta',
      replyTo: 'm1',
      agent: 'tutor',
      text: 'Hello, world',
    });
  });

  it('keeps apart what a client must see apart', () => {
    expect(mergeDeltas(delta('m1', 'a'), delta('m2', 'b'))).toBeUndefined();
    expect(mergeDeltas(delta('m1', 'a', 'tutor'), delta('m1', 'b', 'researcher'))).toBeUndefined();
    const end = JSON.stringify({ type: 'reply.end', replyTo: 'm1', agent: 'tutor', text: 'a' });
    expect(mergeDeltas(delta('m1', 'a'), end)).toBeUndefined();
    expect(mergeDeltas(end, delta('m1', 'a'))).toBeUndefined();
  });
});
