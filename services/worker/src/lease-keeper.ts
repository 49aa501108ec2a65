import type { Logger } from '@chorus/observability';
import type { SessionLease } from '@chorus/state';
import type { StopScope } from './stop-signals.js';

/** Renews a held lease every third of its TTL; aborts the job's scope when the lease is lost. */
export class LeaseKeeper {
  private readonly timer: NodeJS.Timeout;

  constructor(
    lease: SessionLease,
    sessionId: string,
    fence: number,
    ttlMs: number,
    log: Logger,
    private readonly scope: StopScope,
    /** Called as each renewal starts (a renewal also counts the session as processing). */
    onRenewing: () => void = () => undefined,
  ) {
    this.timer = setInterval(
      () => {
        onRenewing();
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
    this.scope.abort(new LeaseLostError(reason));
  }
}

/** This worker no longer holds the session: another one answers it now. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}
