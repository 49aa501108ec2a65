import { describe, expect, it } from 'vitest';
import type { Logger } from '@chorus/observability';
import type { SessionDirectory } from '@chorus/state';
import type { AnswerStopped } from './stop-signals.js';
import { AbandonmentWatch, StopScope } from './stop-signals.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('StopScope', () => {
  it('aborts its children with its reason; a released child no longer follows', () => {
    const root = new StopScope();
    const job = root.child();
    const answer = job.child();
    const released = job.child();
    released.release();
    root.abort(new Error('shutdown'));
    expect(job.aborted && answer.aborted).toBe(true);
    expect((answer.signal.reason as Error).message).toBe('shutdown');
    expect(answer.signal.aborted && answer.reason === root.reason).toBe(true);
    expect(released.aborted).toBe(false);
    expect(root.child().aborted).toBe(true); // a child of an aborted scope starts aborted
  });

  it('a child aborts alone, and only once', () => {
    const job = new StopScope();
    const answer = job.child();
    answer.abort('first');
    answer.abort('second');
    expect(answer.signal.reason).toBe('first');
    expect(job.aborted).toBe(false);
  });
});

describe('AbandonmentWatch', () => {
  const log = { warn: () => undefined } as unknown as Logger;
  const directory = (counts: Map<string, number>) =>
    ({ socketCount: (id: string) => Promise.resolve(counts.get(id) ?? 0) }) as SessionDirectory;

  it('stops an answer whose session has no socket for the grace period, not the others', async () => {
    const counts = new Map([['connected', 1]]);
    const watch = new AbandonmentWatch(directory(counts), 200, log);
    const stopped: string[] = [];
    const alone = watch.watch('alone', (reason) => stopped.push(`alone:${reason.why}`));
    const connected = watch.watch('connected', () => stopped.push('connected'));
    await sleep(120);
    expect(stopped).toEqual([]);
    await sleep(300);
    expect(stopped).toEqual(['alone:abandoned']);
    alone.release();
    connected.release();
  });

  it('a socket back within the grace period resets the clock; release stops the checks', async () => {
    const counts = new Map<string, number>();
    const watch = new AbandonmentWatch(directory(counts), 200, log);
    const stopped: AnswerStopped[] = [];
    const w = watch.watch('s', (reason) => stopped.push(reason));
    await sleep(120);
    counts.set('s', 1);
    await sleep(200);
    counts.delete('s');
    await sleep(120);
    expect(stopped).toEqual([]);
    w.release();
    await sleep(300);
    expect(stopped).toEqual([]);
  });
});
