import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from './redis-connection.js';

/** Where the watch reports a connection it drops (a pino logger is one). */
export interface WatchLog {
  warn(details: object, message: string): void;
}

/** How often the subscriber connection is asked for a PONG, and how long it has to answer. */
export const SUBSCRIBER_PING_MS = 5_000;

/**
 * A subscriber connection whose peer vanished without a word (host down, network partition)
 * reports nothing until TCP keepalive gives up, hours later, and meanwhile hears nothing (a
 * gateway's sockets get no live events; a worker, no cancels). A PING left unanswered for
 * SUBSCRIBER_PING_MS drops the connection: ioredis reconnects and subscribes again (and a
 * gateway's sockets replay what they missed, see its LiveFeed). So does a connection
 * that stays between TCP connect and ready (its CLIENT SETNAME unanswered) over two checks:
 * nothing else times out there.
 * A Redis Cluster's shard subscribers are internal to ioredis: not checked here.
 */
export class SubscriberWatch {
  /** The connection seen between connect and ready at the last check. */
  private connecting: unknown = null;
  private readonly stopping = new AbortController();

  constructor(
    private readonly subscriber: Redis,
    private readonly log: WatchLog,
    /** Called as the connection is dropped: events are missed from here on. */
    private readonly onSilent: () => void = () => undefined,
  ) {}

  async check(): Promise<void> {
    const { subscriber } = this;
    if (subscriber.isCluster || this.stopping.signal.aborted) return;
    const { stream, status } = subscriber;
    if (status !== 'ready') {
      const stuck = status === 'connect' && this.connecting === stream;
      this.connecting = status === 'connect' ? stream : null;
      if (stuck) this.drop(stream, 'subscriber connection never became ready: reconnecting it');
      return;
    }
    this.connecting = null;
    let answered = false;
    const pong = subscriber.ping().then(
      () => (answered = true),
      () => (answered = true), // failed, not silent: the connection reports its own trouble
    );
    const { signal } = this.stopping;
    await Promise.race([pong, sleep(SUBSCRIBER_PING_MS, false, { ref: false, signal })]).catch(
      () => undefined, // stopped
    );
    // After an event loop blocked for longer, the timer fires in the turn that reads the PONG.
    if (!answered) await nextTurn();
    if (answered || signal.aborted || subscriber.status !== 'ready') return;
    this.drop(stream, 'subscriber connection silent: reconnecting it');
  }

  /** Ends a check in progress; no connection is dropped after this. */
  stop(): void {
    this.stopping.abort();
  }

  private drop(stream: unknown, message: string): void {
    // A connection that was replaced meanwhile is not the one that went silent.
    if (this.subscriber.stream !== stream) return;
    this.log.warn(
      { connection: this.subscriber.options.connectionName, waitedMs: SUBSCRIBER_PING_MS },
      message,
    );
    this.onSilent();
    this.subscriber.disconnect(true);
  }
}
