import type { Logger } from '@chorus/observability';
import type { SessionLease } from '@chorus/state';

/** Renews a held lease every third of its TTL; aborts the work when the lease is lost. */
export class LeaseKeeper {
  readonly lost = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(lease: SessionLease, sessionId: string, fence: number, ttlMs: number, log: Logger) {
    this.timer = setInterval(
      () => {
        lease.renew(sessionId, fence).then(
          (held) => {
            if (!held) this.lose('lease lost');
          },
          (error: unknown) => log.warn({ err: error, sessionId }, 'lease renewal failed; retrying'),
        );
      },
      Math.max(100, Math.floor(ttlMs / 3)),
    );
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private lose(reason: string): void {
    this.stop();
    this.lost.abort(new LeaseLostError(reason));
  }
}

/** This worker no longer holds the session: another one answers it now. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}
