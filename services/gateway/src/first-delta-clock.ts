import type { GatewayMetrics } from '@chorus/observability';

const DELTA_PREFIX = '{"type":"reply.delta","replyTo":"';
const FORGET_AFTER_MS = 5 * 60_000;

/**
 * Measures, as this gateway sees it, the time from a chat's `ack` to the first `reply.delta`
 * of its reply (chorus_reply_first_delta_seconds).
 */
export class FirstDeltaClock {
  private readonly ackedAt = new Map<string, number>();

  constructor(private readonly metrics: GatewayMetrics) {}

  acked(sessionId: string, messageId: string): void {
    this.ackedAt.set(`${sessionId}\n${messageId}`, performance.now());
  }

  /** Looks at an encoded event body; only a reply's first delta is measured. */
  event(sessionId: string, body: string): void {
    if (this.ackedAt.size === 0 || !body.startsWith(DELTA_PREFIX)) return;
    const end = body.indexOf('"', DELTA_PREFIX.length);
    const key = `${sessionId}\n${body.slice(DELTA_PREFIX.length, end)}`;
    const at = this.ackedAt.get(key);
    if (at === undefined) return;
    this.ackedAt.delete(key);
    this.metrics.firstDeltaObserved((performance.now() - at) / 1000);
  }

  /** Drops acks whose reply never streamed here (answered elsewhere, failed, or cancelled). */
  forgetOld(): void {
    const cutoff = performance.now() - FORGET_AFTER_MS;
    for (const [key, at] of this.ackedAt) if (at < cutoff) this.ackedAt.delete(key);
  }
}
