import { describe, expect, it } from 'vitest';
import { DeltaCoalescer } from './delta-coalescer.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A write target that records what it got, one write at a time. */
function recorder(delayMs: (text: string) => number = () => 0) {
  const writes: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const write = async (text: string) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const delay = delayMs(text);
    if (delay > 0) await sleep(delay);
    writes.push(text);
    inFlight--;
  };
  return { writes, write, maxInFlight: () => maxInFlight };
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
    await coalescer.flush();
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

  it('flush writes what is buffered at once, without waiting for the window', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(10_000, target.write);
    coalescer.push('x');
    coalescer.push('y');
    const started = Date.now();
    await coalescer.flush();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(target.writes).toEqual(['xy']);
    await coalescer.flush();
    expect(target.writes).toEqual(['xy']); // nothing buffered: no empty write
  });

  it('window 0 writes each push on its own, in order', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(0, target.write);
    for (const piece of ['one ', 'two ', 'three']) coalescer.push(piece);
    await coalescer.flush();
    expect(target.writes).toEqual(['one ', 'two ', 'three']);
  });

  it('keeps order and writes one at a time even when writes are slow and uneven', async () => {
    // Earlier writes are slower than later ones: a coalescer that did not chain them would reorder.
    let n = 0;
    const target = recorder(() => Math.max(0, 30 - 6 * n++));
    const coalescer = new DeltaCoalescer(0, target.write);
    const pieces = Array.from({ length: 8 }, (_, i) => `p${i};`);
    for (const piece of pieces) coalescer.push(piece);
    await coalescer.flush();
    expect(target.writes).toEqual(pieces);
    expect(target.maxInFlight()).toBe(1);
  });

  it('the concatenated writes equal the input, with far fewer writes than pushes', async () => {
    const target = recorder((text) => text.length % 3);
    const coalescer = new DeltaCoalescer(15, target.write);
    const pieces = Array.from({ length: 120 }, (_, i) => `tok${i} `);
    for (const [i, piece] of pieces.entries()) {
      coalescer.push(piece);
      if (i % 7 === 0) await sleep(4);
    }
    await coalescer.flush();
    expect(target.writes.join('')).toBe(pieces.join(''));
    expect(target.writes.length).toBeGreaterThan(1);
    expect(target.writes.length).toBeLessThan(pieces.length / 3);
    expect(target.maxInFlight()).toBe(1);
  });

  it('flush waits for every write so far', async () => {
    const target = recorder(() => 40);
    const coalescer = new DeltaCoalescer(0, target.write);
    coalescer.push('slow');
    coalescer.push(' and slower');
    await coalescer.flush();
    expect(target.writes).toEqual(['slow', ' and slower']);
  });

  it('a failing write surfaces on flush', async () => {
    const coalescer = new DeltaCoalescer(0, () => Promise.reject(new Error('fenced out')));
    coalescer.push('lost');
    await expect(coalescer.flush()).rejects.toThrow('fenced out');
  });

  it('a failing timed write surfaces on the next push and on flush', async () => {
    let calls = 0;
    const coalescer = new DeltaCoalescer(10, () => {
      calls++;
      return Promise.reject(new Error('redis down'));
    });
    coalescer.push('first');
    await sleep(50);
    expect(calls).toBe(1);
    expect(() => coalescer.push('second')).toThrow('redis down');
    await expect(coalescer.flush()).rejects.toThrow('redis down');
  });

  it('discard drops buffered text and its timer', async () => {
    const target = recorder();
    const coalescer = new DeltaCoalescer(20, target.write);
    coalescer.push('kept');
    await coalescer.flush();
    coalescer.push('dropped');
    coalescer.discard();
    await sleep(60);
    expect(target.writes).toEqual(['kept']);
    await coalescer.flush();
    expect(target.writes).toEqual(['kept']);
    coalescer.push('after');
    await coalescer.flush();
    expect(target.writes).toEqual(['kept', 'after']);
  });
});
