import type { Logger } from '@chorus/observability';
import type { KeySchema, Redis, SessionDirectory } from '@chorus/state';

/** Why an answer was stopped early; the answer then ends with `cancelled: true`. */
export class AnswerStopped extends Error {
  override readonly name = 'AnswerStopped';
  constructor(readonly why: 'cancelled' | 'abandoned') {
    super(
      why === 'cancelled' ? 'the client cancelled' : 'no socket came back within the grace period',
    );
  }
}

/**
 * Cancel requests from any gateway reach every worker on one channel; the worker answering the
 * message aborts it. Requests for messages not yet started are found in Redis when they start.
 */
export class CancelListener {
  private readonly answering = new Map<string, AbortController>();

  constructor(
    private readonly subscriber: Redis,
    private readonly keys: KeySchema,
    private readonly log: Logger,
  ) {
    subscriber.on('message', (channel: string, raw: string) => {
      if (channel === keys.cancelChannel)
        this.answering.get(raw)?.abort(new AnswerStopped('cancelled'));
    });
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.keys.cancelChannel);
  }

  /** Register before checking Redis for an earlier request, so that no request falls between. */
  watch(sessionId: string, messageId: string): { signal: AbortSignal; release(): void } {
    const key = `${sessionId}\n${messageId}`;
    const controller = new AbortController();
    this.answering.set(key, controller);
    return {
      signal: controller.signal,
      release: () => {
        if (this.answering.get(key) === controller) this.answering.delete(key);
      },
    };
  }

  stop(): void {
    this.subscriber.unsubscribe(this.keys.cancelChannel).catch((error: unknown) => {
      this.log.warn({ err: error }, 'cancel unsubscribe failed');
    });
  }
}

/**
 * Disconnect is not stop: an answer goes on while its session has no socket, for up to
 * `graceMs`, and is then abandoned to save tokens.
 */
export function watchForAbandonment(
  directory: SessionDirectory,
  sessionId: string,
  graceMs: number,
  log: Logger,
): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  let aloneSince: number | null = null;
  const timer = setInterval(
    () => {
      directory.socketCount(sessionId).then(
        (count) => {
          if (count > 0) aloneSince = null;
          else aloneSince ??= Date.now();
          if (aloneSince !== null && Date.now() - aloneSince >= graceMs) {
            clearInterval(timer);
            controller.abort(new AnswerStopped('abandoned'));
          }
        },
        (error: unknown) => log.warn({ err: error, sessionId }, 'socket check failed'),
      );
    },
    Math.max(50, Math.min(1_000, graceMs / 4)),
  );
  return { signal: controller.signal, release: () => clearInterval(timer) };
}
