import { describe, expect, it } from 'vitest';
import type { SessionEventBody } from '@chorus/protocol';
import { EventWriter } from './event-writer.js';
import { LeaseLostError } from './lease-keeper.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const delta = (text: string): SessionEventBody => ({
  type: 'reply.delta',
  replyTo: 'm1',
  agent: 'tutor',
  text,
});
const texts = (bodies: string[]) => bodies.map((b) => (JSON.parse(b) as { text: string }).text);

/** A store that records each step's events, taking `delayMs` per step. */
function store(delayMs = 5, fail?: (step: number) => 'fenced' | 'error' | undefined) {
  const steps: string[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const appendMany = async (bodies: string[]) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(delayMs);
    inFlight--;
    const outcome = fail?.(steps.length);
    if (outcome === 'error') throw new Error('redis down');
    if (outcome === 'fenced') return null;
    steps.push(texts(bodies));
    return bodies.map((_, i) => `1-${i}`);
  };
  return { steps, appendMany, maxInFlight: () => maxInFlight };
}

describe('EventWriter', () => {
  it('what one event-loop turn queues goes in one step', async () => {
    const target = store();
    const writer = new EventWriter(target.appendMany);
    for (const t of ['a', 'b', 'c']) writer.push(delta(t));
    await writer.settle();
    expect(target.steps).toEqual([['a', 'b', 'c']]);
  });

  it('events queued while a step is in flight go together in the next, in order, one step at a time', async () => {
    const target = store(20);
    const writer = new EventWriter(target.appendMany);
    writer.push(delta('1'));
    await sleep(5); // the first step is in flight
    for (const t of ['2', '3', '4']) {
      writer.push(delta(t));
      await sleep(2);
    }
    await writer.settle();
    expect(target.steps).toEqual([['1'], ['2', '3', '4']]);
    expect(target.maxInFlight()).toBe(1);
  });

  it('drain waits for the step in flight and hands over what is still queued', async () => {
    const target = store(20);
    const writer = new EventWriter(target.appendMany);
    writer.push(delta('sent'));
    await sleep(5);
    writer.push(delta('queued'));
    const rest = await writer.drain();
    expect(target.steps).toEqual([['sent']]);
    expect(texts(rest)).toEqual(['queued']);
    writer.push(delta('late')); // ignored once drained
    await sleep(30);
    expect(target.steps).toEqual([['sent']]);
  });

  it('drain right after pushes hands everything over: one final step for a whole answer', async () => {
    const target = store();
    const writer = new EventWriter(target.appendMany);
    for (const t of ['x', 'y']) writer.push(delta(t));
    expect(texts(await writer.drain())).toEqual(['x', 'y']);
    await sleep(20);
    expect(target.steps).toEqual([]);
  });

  it('a fenced-out step sticks: LeaseLostError on the next push, settle and drain; nothing written after it', async () => {
    const target = store(5, (step) => (step === 1 ? 'fenced' : undefined));
    const writer = new EventWriter(target.appendMany);
    writer.push(delta('ok'));
    await writer.settle();
    writer.push(delta('refused'));
    await expect(writer.settle()).rejects.toBeInstanceOf(LeaseLostError);
    expect(() => writer.push(delta('after'))).toThrow(LeaseLostError);
    await expect(writer.drain()).rejects.toBeInstanceOf(LeaseLostError);
    expect(target.steps).toEqual([['ok']]);
  });

  it('a failed step sticks too, so that no later event leaves a gap', async () => {
    const target = store(5, (step) => (step === 0 ? 'error' : undefined));
    const writer = new EventWriter(target.appendMany);
    writer.push(delta('lost'));
    await sleep(20);
    expect(() => writer.push(delta('next'))).toThrow('redis down');
    await expect(writer.drain()).rejects.toThrow('redis down');
    expect(target.steps).toEqual([]);
  });
});
