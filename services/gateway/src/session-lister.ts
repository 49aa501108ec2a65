import type { SessionDirectory } from '@chorus/state';

/** One batch of sessions being listed: `sent` once its SADD is queued, `done` once stored. */
export interface Listing {
  sent: Promise<void>;
  done: Promise<void>;
}

/**
 * Lists the sessions this gateway holds sockets of (for the reaper, should it die), with one
 * SADD for all the sockets that connect in one turn of the event loop instead of one each. A
 * socket must be listed before it is registered: a command sent once `sent` settles goes
 * after the SADD on the same connection.
 */
export class SessionLister {
  private pending: string[] = [];
  private batch: Listing | null = null;

  constructor(
    private readonly directory: SessionDirectory,
    private readonly gatewayId: string,
  ) {}

  list(sessionId: string): Listing {
    this.pending.push(sessionId);
    if (this.batch) return this.batch;
    let markSent!: () => void;
    let store!: (stored: Promise<void>) => void;
    const sent = new Promise<void>((resolve) => (markSent = resolve));
    const done = new Promise<void>((resolve) => (store = resolve));
    // Awaited by every socket of the batch; this only keeps a failure from counting as unhandled.
    done.catch(() => undefined);
    setImmediate(() => {
      const sessionIds = this.pending;
      this.pending = [];
      this.batch = null;
      // The SADD is queued on the connection by this call, before anyone hears of `sent`.
      store(this.directory.listUnderGateway(sessionIds, this.gatewayId));
      markSent();
    });
    this.batch = { sent, done };
    return this.batch;
  }
}
