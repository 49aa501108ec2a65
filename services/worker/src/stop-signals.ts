import type { Logger } from '@chorus/observability';
import type { KeySchema, Redis, SessionDirectory } from '@chorus/state';

/**
 * An AbortController whose children abort with it: the worker's (shutdown), a job's (lease lost)
 * and an answer's (cancel, abandoned, timeout). What AbortSignal.any does, without an event
 * listener per source and per answer (each costs microseconds in Node).
 */
export class StopScope {
  /** Made on first use of `signal`: an AbortSignal costs microseconds to create. */
  private controller: AbortController | null = null;
  private readonly children = new Set<StopScope>();
  private parent: StopScope | null = null;
  private stopped = false;
  private why: unknown;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.stopped) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.stopped;
  }

  /** Why it was aborted (undefined while it is not). */
  get reason(): unknown {
    return this.why;
  }

  abort(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.why = reason;
    this.controller?.abort(reason);
    for (const child of this.children) child.abort(reason);
    this.children.clear();
  }

  /** A scope that aborts when this one does; `release` it when done. */
  child(): StopScope {
    const child = new StopScope();
    if (this.stopped) child.abort(this.why);
    else {
      child.parent = this;
      this.children.add(child);
    }
    return child;
  }

  release(): void {
    this.parent?.children.delete(this);
    this.parent = null;
  }
}

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
 * message aborts it. Requests for messages not yet started are found in Redis when they start
 * (MessageInbox.claim); a job holds its session (`hold`) from before that read to its end, so that
 * a request published in between is remembered here instead of falling through.
 */
export class CancelListener {
  private readonly answering = new Map<string, (reason: AnswerStopped) => void>();
  /** Sessions held by a job: the ids whose cancel was heard meanwhile. */
  private readonly held = new Map<string, { holders: number; requested: Set<string> }>();

  private started = false;

  constructor(
    private readonly subscriber: Redis,
    private readonly keys: KeySchema,
    private readonly log: Logger,
    /** Whether a cancel of the message is stored in Redis (MessageInbox.cancelRequested). */
    private readonly cancelRequested: (sessionId: string, id: string) => Promise<boolean>,
  ) {
    subscriber.on('message', (channel: string, raw: string) => {
      if (channel !== keys.cancelChannel) return;
      const newline = raw.indexOf('\n');
      if (newline >= 0) this.held.get(raw.slice(0, newline))?.requested.add(raw.slice(newline + 1));
      this.answering.get(raw)?.(new AnswerStopped('cancelled'));
    });
    // Requests published while the subscription was down (or silent) were not heard; each is
    // also stored, and read once it is back.
    subscriber.on('ready', () => {
      if (this.started) void this.catchUp();
    });
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.keys.cancelChannel);
    this.started = true;
  }

  private async catchUp(): Promise<void> {
    try {
      // Subscribed again first (ioredis does it on reconnect too): no request falls in between.
      await this.subscriber.subscribe(this.keys.cancelChannel);
      await Promise.all(
        [...this.answering].map(async ([key, onCancel]) => {
          const [sessionId = '', id = ''] = key.split('\n');
          if ((await this.cancelRequested(sessionId, id)) && this.answering.get(key) === onCancel)
            onCancel(new AnswerStopped('cancelled'));
        }),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'cancel check after reconnect failed');
    }
  }

  /** Remembers the session's cancel requests until `release`; call before reading Redis. */
  hold(sessionId: string): { release(): void } {
    let entry = this.held.get(sessionId);
    if (!entry) {
      entry = { holders: 0, requested: new Set() };
      this.held.set(sessionId, entry);
    }
    entry.holders++;
    const held = entry;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        if (--held.holders === 0 && this.held.get(sessionId) === held) this.held.delete(sessionId);
      },
    };
  }

  /**
   * Calls `onCancel` when the client asks to stop this message. Register before checking Redis
   * for an earlier request, or while the session is held, so that no request falls between;
   * called at once for a request heard while held.
   */
  watch(
    sessionId: string,
    messageId: string,
    onCancel: (reason: AnswerStopped) => void,
  ): { release(): void } {
    const key = `${sessionId}\n${messageId}`;
    this.answering.set(key, onCancel);
    if (this.held.get(sessionId)?.requested.has(messageId))
      onCancel(new AnswerStopped('cancelled'));
    return {
      release: () => {
        if (this.answering.get(key) === onCancel) this.answering.delete(key);
      },
    };
  }

  stop(): void {
    this.subscriber.unsubscribe(this.keys.cancelChannel).catch((error: unknown) => {
      this.log.warn({ err: error }, 'cancel unsubscribe failed');
    });
  }
}

interface Watched {
  sessionId: string;
  aloneSince: number | null;
  onAbandon: (reason: AnswerStopped) => void;
}

/**
 * Disconnect is not stop: an answer goes on while its session has no socket, for up to
 * `graceMs`, and is then abandoned to save tokens. One timer per worker checks the sessions of
 * every answer in progress (not one per answer), every `graceMs / 4` (50 ms to 1 s).
 */
export class AbandonmentWatch {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private readonly intervalMs: number;

  constructor(
    private readonly directory: SessionDirectory,
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {
    this.intervalMs = Math.max(50, Math.min(1_000, graceMs / 4));
  }

  /** Calls `onAbandon` once the session has had no socket for the grace period. */
  watch(sessionId: string, onAbandon: (reason: AnswerStopped) => void): { release(): void } {
    const entry: Watched = { sessionId, aloneSince: null, onAbandon };
    this.watched.add(entry);
    this.timer ??= setInterval(() => this.check(), this.intervalMs);
    return {
      release: () => {
        this.watched.delete(entry);
        if (this.watched.size === 0 && this.timer) {
          clearInterval(this.timer);
          this.timer = null;
        }
      },
    };
  }

  private check(): void {
    if (this.checking) return;
    this.checking = true;
    const entries = [...this.watched];
    const sessions = [...new Set(entries.map((entry) => entry.sessionId))];
    void Promise.all(
      sessions.map((sessionId) =>
        this.directory.socketCount(sessionId).then(
          (count): [string, number] => [sessionId, count],
          (error: unknown): [string, number] => {
            this.log.warn({ err: error, sessionId }, 'socket check failed');
            return [sessionId, -1];
          },
        ),
      ),
    ).then((counts) => {
      this.checking = false;
      const bySession = new Map(counts);
      const now = Date.now();
      for (const entry of entries) {
        const count = bySession.get(entry.sessionId) ?? -1;
        if (count < 0 || !this.watched.has(entry)) continue;
        if (count > 0) entry.aloneSince = null;
        else entry.aloneSince ??= now;
        if (entry.aloneSince !== null && now - entry.aloneSince >= this.graceMs) {
          this.watched.delete(entry);
          entry.onAbandon(new AnswerStopped('abandoned'));
        }
      }
    });
  }
}
