import { describe, expect, it } from 'vitest';
import { DeltaCoalescer } from './delta-coalescer.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A write target that records what it got. */
function recorder() {
  const writes: string[] = [];
  return { writes, write: (text: string) => void writes.push(text) };
}

describe('DeltaCoalescer', () => {
  it('several pushes inside the window make one write with their concatenation', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(40, target.write);
    coalescer.push('Hel');
    coalescer.push('lo, ');
    coalescer.push('world');
    await sleep(5);
    expect(target.writes).toEqual([]);
    await sleep(100);
    expect(target.writes).toEqual(['Hello, world']);
    coalescer.flush();
    expect(target.writes).toEqual(['Hello, world']);
  });

  it('pushes in separate windows make separate writes', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(20, target.write);
    coalescer.push('a');
    coalescer.push('b');
    await sleep(60);
    coalescer.push('c');
    await sleep(60);
    expect(target.writes).toEqual(['ab', 'c']);
  });

  it('flush writes what is buffered at once, without waiting for the window', () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(10_000, target.write);
    coalescer.push('x');
    coalescer.push('y');
    coalescer.flush();
    expect(target.writes).toEqual(['xy']);
    coalescer.flush();
    expect(target.writes).toEqual(['xy']); // nothing buffered: no empty write
  });

  it('window 0 writes each push on its own, at once, in order', () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(0, target.write);
    for (const piece of ['one ', 'two ', 'three']) coalescer.push(piece);
    expect(target.writes).toEqual(['one ', 'two ', 'three']);
  });

  it('the concatenated writes equal the input, with far fewer writes than pushes', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(15, target.write);
    const pieces = Array.from({ length: 120 }, (_, i) => `tok${i} `);
    for (const [i, piece] of pieces.entries()) {
      coalescer.push(piece);
      if (i % 7 === 0) await sleep(4);
    }
    coalescer.flush();
    expect(target.writes.join('')).toBe(pieces.join(''));
    expect(target.writes.length).toBeGreaterThan(1);
    expect(target.writes.length).toBeLessThan(pieces.length / 3);
  });

  it('a failing write with window 0 throws from push', () => {
    const coalescer = new DeltaCoalescer(0, () => {
      throw new Error('fenced out');
    });
    expect(() => coalescer.push('lost')).toThrow('fenced out');
  });

  it('a failing timed write surfaces on the next push and on flush', async () => {
    let calls = 0;
    const coalescer = new DeltaCoalescer(10, () => {
      calls++;
      throw new Error('redis down');
    });
    coalescer.push('first');
    await sleep(50);
    expect(calls).toBe(1);
    expect(() => coalescer.push('second')).toThrow('redis down');
    expect(() => coalescer.flush()).toThrow('redis down');
  });

  it('discard drops buffered text and its timer', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(20, target.write);
    coalescer.push('kept');
    coalescer.flush();
    coalescer.push('dropped');
    coalescer.discard();
    await sleep(60);
    expect(target.writes).toEqual(['kept']);
    coalescer.flush();
    expect(target.writes).toEqual(['kept']);
    coalescer.push('after');
    coalescer.flush();
    expect(target.writes).toEqual(['kept', 'after']);
  });
});
