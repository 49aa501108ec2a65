import { encodeEventBody, type SessionEventBody } from '@chorus/protocol';
import { LeaseLostError } from './lease-keeper.js';

/** Appends encoded events in order, in one step, for the lease holder; null when fenced out. */
export type AppendMany = (encodedBodies: string[]) => Promise<string[] | null>;

/**
 * The events of one answer, written by group commit: an event is queued at once (`push` never
 * waits) and written with every other event queued by then, in one step, in order. While one
 * write is in flight the next events wait and then go together. The first write of a burst waits
 * for the end of the current event-loop turn (setImmediate), so that what a turn produces goes in
 * one step; what is still queued when the answer ends goes with its final step (`drain`).
 *
 * A failed write (lease lost, Redis error) sticks: it is thrown by the next `push`, by `settle`
 * and by `drain`, and nothing is written after it, so a client never sees a gap.
 */
export class EventWriter {
  private queue: string[] = [];
  private inFlight: Promise<void> | null = null;
  private scheduled = false;
  private draining = false;
  private failure: Error | null = null;

  constructor(private readonly appendMany: AppendMany) {}

  /** Queues an event; throws a failure seen earlier. Ignored once the writer is drained. */
  push(body: SessionEventBody): void {
    if (this.failure) throw this.failure;
    if (this.draining) return;
    this.queue.push(encodeEventBody(body));
    if (this.inFlight === null && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.sendScheduled);
    }
  }

  /** Waits until every event queued so far is written; throws a failure. */
  async settle(): Promise<void> {
    while (this.inFlight !== null || (this.queue.length > 0 && !this.failure)) {
      if (this.inFlight === null) this.send();
      await this.inFlight;
    }
    if (this.failure) throw this.failure;
  }

  /**
   * Ends the writer: waits for the write in flight, then hands over what is still queued (to be
   * written, in order, by the answer's final step). Throws a failure.
   */
  async drain(): Promise<string[]> {
    this.draining = true;
    while (this.inFlight !== null) await this.inFlight;
    if (this.failure) throw this.failure;
    const rest = this.queue;
    this.queue = [];
    return rest;
  }

  private readonly sendScheduled = (): void => {
    this.scheduled = false;
    if (!this.draining) this.send();
  };

  private send(): void {
    if (this.inFlight !== null || this.queue.length === 0 || this.failure) return;
    const batch = this.queue;
    this.queue = [];
    this.inFlight = this.appendMany(batch).then(
      (ids) => {
        this.inFlight = null;
        if (ids === null) this.failure ??= new LeaseLostError('fenced out');
        else if (!this.draining) this.send();
      },
      (error: unknown) => {
        this.inFlight = null;
        this.failure ??= error instanceof Error ? error : new Error(String(error));
      },
    );
  }
}
