import type { Redis } from 'ioredis';
import { encodeEventBody, type SessionEventBody } from '@chorus/protocol';
import type { KeySchema } from './keys.js';
import { runScript } from './scripts.js';

export interface MessageRecord {
  /** eventId of the message's `user.message`, which its `ack` carries too */
  eventId: string;
  text: string;
  ts: number;
  state: 'pending' | 'done';
}

export type AcceptResult =
  | { status: 'accepted' | 'duplicate'; record: MessageRecord }
  | { status: 'rate_limited'; retryAfterMs: number };

export interface HistoryTurn {
  role: 'user' | 'assistant';
  content: string;
  /** chat id the turn belongs to */
  id: string;
}

export interface InboxSettings {
  eventsMaxLen: number;
  sessionTtlSeconds: number;
  historyMaxEntries: number;
  /** Messages a session may send at once, then one per `messageRefillMs`; 0 for no limit. */
  messageBurst?: number;
  messageRefillMs?: number;
}

/** A session's chat messages: idempotent acceptance, the ordered inbox, and their completion. */
export class MessageInbox {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly settings: InboxSettings,
  ) {}

  /**
   * Stores the message once, logs `user.message`, queues it; a resend returns the first record.
   * A new message over the session's rate limit is refused and stores nothing.
   */
  async accept(
    sessionId: string,
    message: { id: string; text: string; ts: number },
  ): Promise<AcceptResult> {
    const k = this.keys.session(sessionId);
    const body = encodeEventBody({ type: 'user.message', ...message });
    const reply = (await runScript(
      this.redis,
      'acceptMessage',
      [k.messages, k.inbox, k.events, k.channel, k.meta, k.history, k.fence, k.rateLimit],
      [
        message.id,
        body,
        message.text,
        message.ts,
        this.settings.eventsMaxLen,
        this.settings.sessionTtlSeconds,
        this.settings.messageBurst ?? 0,
        1 / (this.settings.messageRefillMs ?? 1),
      ],
    )) as [string, string];
    if (reply[0] === 'rate_limited')
      return { status: 'rate_limited', retryAfterMs: Number(reply[1]) };
    const status = reply[0] === 'duplicate' ? 'duplicate' : 'accepted';
    return { status, record: JSON.parse(reply[1]) as MessageRecord };
  }

  async get(sessionId: string, id: string): Promise<MessageRecord | null> {
    const raw = await this.redis.hget(this.keys.session(sessionId).messages, id);
    return raw ? (JSON.parse(raw) as MessageRecord) : null;
  }

  /** The oldest message still waiting for its answer; ids whose record is gone are dropped. */
  async head(sessionId: string): Promise<{ id: string; record: MessageRecord } | null> {
    const k = this.keys.session(sessionId);
    for (;;) {
      const id = await this.redis.lindex(k.inbox, 0);
      if (id === null) return null;
      const record = await this.get(sessionId, id);
      if (record) return { id, record };
      await this.redis.lrem(k.inbox, 1, id);
    }
  }

  /**
   * Ends a message's answer with its final event and appends the turns to the history; releases
   * the lease (with `status: idle`) when nothing else waits. Null when the lease was lost.
   */
  async finish(
    sessionId: string,
    fence: number,
    id: string,
    finalEvent: SessionEventBody,
    turns: HistoryTurn[],
  ): Promise<{ eventId: string; waiting: number } | null> {
    const k = this.keys.session(sessionId);
    const reply = await runScript(
      this.redis,
      'finishMessage',
      [k.lease, k.events, k.channel, k.messages, k.inbox, k.history],
      [
        fence,
        id,
        encodeEventBody(finalEvent),
        encodeEventBody({ type: 'status', state: 'idle' }),
        this.settings.eventsMaxLen,
        this.settings.historyMaxEntries,
        this.settings.sessionTtlSeconds,
        ...turns.map((turn) => JSON.stringify(turn)),
      ],
    );
    if (!Array.isArray(reply)) return null;
    return { eventId: String(reply[0]), waiting: Number(reply[1]) };
  }

  /** Asks whichever worker answers the message to stop; remembered for one not yet started. */
  async requestCancel(sessionId: string, id: string): Promise<void> {
    const k = this.keys.session(sessionId);
    await this.redis
      .multi()
      .sadd(k.cancels, id)
      .expire(k.cancels, this.settings.sessionTtlSeconds)
      .publish(this.keys.cancelChannel, `${sessionId}\n${id}`)
      .exec();
  }

  async cancelRequested(sessionId: string, id: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.session(sessionId).cancels, id)) === 1;
  }

  /** The conversation so far, oldest first. */
  async history(sessionId: string): Promise<HistoryTurn[]> {
    const raw = await this.redis.lrange(this.keys.session(sessionId).history, 0, -1);
    return raw.map((entry) => JSON.parse(entry) as HistoryTurn);
  }
}
