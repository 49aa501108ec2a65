import { CloseCode } from '@chorus/protocol';

/** How long a subscription that came back must stay up before its sockets are sent away. */
export const FEED_SETTLE_MS = 250;
/** How long sockets wait, receiving nothing, for a subscription that dropped. */
export const FEED_OUTAGE_MS = 5_000;

/** Closes every socket of the gateway with `code`. */
export type SendAway = (code: CloseCode, reason: string) => void;

/**
 * Whether the gateway's subscription delivers live events. Events published while it is down
 * never reach this gateway and its sockets cannot tell: once it is back, they are sent away
 * (1001) to reconnect with their lastEventId and replay them. New sockets wait until then.
 *
 * It counts as back once it has stayed up FEED_SETTLE_MS: ioredis may report a Redis Cluster's
 * subscribers ready several times in one outage. Trouble lasts from the first drop until the
 * feed has stayed up FEED_OUTAGE_MS: within it, sockets wait at most FEED_OUTAGE_MS from that
 * first drop, and are sent away with 1013 (back off) rather than 1001 when it was already done
 * once, so that a subscription that keeps failing (a dead shard) does not call every client
 * back every few seconds.
 */
export class LiveFeed {
  private up = true;
  /** When the current trouble began (its first drop); null when there is none. */
  private troubleSince: number | null = null;
  /** Sockets were already sent away in the current trouble. */
  private sentAway = false;
  private settling: NodeJS.Timeout | undefined;
  private outage: NodeJS.Timeout | undefined;
  private calm: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly sendAway: SendAway) {}

  get isUp(): boolean {
    return this.up;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** The subscription dropped, or was found silent. */
  lost(): void {
    if (this.stopped) return;
    clearTimeout(this.settling);
    clearTimeout(this.calm);
    if (!this.up) return;
    this.up = false;
    const since = (this.troubleSince ??= Date.now());
    const left = Math.max(0, since + FEED_OUTAGE_MS - Date.now());
    this.outage = setTimeout(() => {
      this.sentAway = true;
      this.sendAway(CloseCode.tryAgainLater, 'live events unavailable; try again later');
    }, left).unref();
  }

  /** The subscription reports itself ready again. */
  back(): void {
    if (this.up || this.stopped) return;
    clearTimeout(this.settling);
    this.settling = setTimeout(() => {
      clearTimeout(this.outage);
      this.up = true;
      if (this.sentAway)
        this.sendAway(CloseCode.tryAgainLater, 'live events interrupted again; try again later');
      else this.sendAway(CloseCode.draining, 'live events interrupted; reconnect');
      this.sentAway = true;
      this.calm = setTimeout(() => {
        this.troubleSince = null;
        this.sentAway = false;
      }, FEED_OUTAGE_MS).unref();
    }, FEED_SETTLE_MS).unref();
  }

  /** Clears its timers and hears nothing more (the gateway stops, its connections close). */
  stop(): void {
    this.stopped = true;
    for (const timer of [this.settling, this.outage, this.calm]) clearTimeout(timer);
  }
}
