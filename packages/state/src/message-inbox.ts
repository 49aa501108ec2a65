import type { Redis } from 'ioredis';
import { encodeEventBody, type SessionEventBody } from '@chorus/protocol';
import { sessionJobKey } from './chat-queue.js';
import type { KeySchema } from './keys.js';
import { runScript } from './scripts.js';

export interface MessageRecord {
  /** eventId of the message's `user.message`, which its `ack` carries too */
  eventId: string;
  text: string;
  ts: number;
  state: 'pending' | 'done';
  /** How many times a worker has claimed it to answer it. */
  tries?: number;
  /** Once done: the eventId of its final event (reply.end or error). */
  finalId?: string;
}

export type AcceptResult =
  | {
      status: 'accepted' | 'duplicate';
      record: MessageRecord;
      /**
       * The deduplication key of the job that must be queued for the session before the ack
       * (see enqueueChat); null when none is needed: the message is answered, or a worker holds
       * the session and answers it in its turn.
       */
      jobKey: string | null;
    }
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

export type ClaimResult =
  | { status: 'busy' | 'lost' | 'nothing' }
  | {
      status: 'claimed';
      fence: number;
      id: string;
      record: MessageRecord;
      cancelRequested: boolean;
      history: HistoryTurn[];
    };

const IDLE = encodeEventBody({ type: 'status', state: 'idle' });

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
      [k.messages, k.inbox, k.events, k.channel, k.meta, k.history, k.fence, k.rateLimit, k.lease],
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
    )) as [string, string, string?];
    if (reply[0] === 'rate_limited')
      return { status: 'rate_limited', retryAfterMs: Number(reply[1]) };
    const status = reply[0] === 'duplicate' ? 'duplicate' : 'accepted';
    return {
      status,
      record: JSON.parse(reply[1]) as MessageRecord,
      jobKey: reply[2] ? sessionJobKey(sessionId, reply[2]) : null,
    };
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
   * Takes the next message of a session to answer, in one step. With `heldFence` null it takes
   * the lease: 'busy' when another worker holds it. With the fence of a held lease it reads the
   * next message: 'lost' when that lease is not held any more. 'nothing' when no message waits
   * (no lease taken). Else the fence, the inbox's head, whether the client already asked to stop
   * it, and the history when `withHistory`.
   */
  async claim(
    sessionId: string,
    options: { heldFence: number | null; leaseTtlMs: number; withHistory: boolean },
  ): Promise<ClaimResult> {
    const k = this.keys.session(sessionId);
    const reply = (await runScript(
      this.redis,
      'claimMessage',
      [k.lease, k.fence, k.inbox, k.messages, k.history, k.cancels],
      [
        options.heldFence === null ? '' : options.heldFence,
        options.leaseTtlMs,
        options.withHistory ? '1' : '0',
      ],
    )) as [string, ...(string | number)[]];
    const [status, fence, id, record, cancelled, ...history] = reply;
    if (status !== 'claimed') return { status: status as 'busy' | 'lost' | 'nothing' };
    return {
      status,
      fence: Number(fence),
      id: String(id),
      record: JSON.parse(String(record)) as MessageRecord,
      cancelRequested: cancelled === 1,
      history: history.map((entry) => JSON.parse(String(entry)) as HistoryTurn),
    };
  }

  /**
   * Ends a message's answer with its final event and appends the turns to the history; releases
   * the lease (with `status: idle`) when nothing else waits. Null when the lease was lost.
   * `before`: events already encoded (`encodeEventBody`) to append first, in the same step.
   */
  async finish(
    sessionId: string,
    fence: number,
    id: string,
    finalEvent: SessionEventBody,
    turns: HistoryTurn[],
    before: string[] = [],
  ): Promise<{ eventId: string; waiting: number } | null> {
    const k = this.keys.session(sessionId);
    const reply = await runScript(
      this.redis,
      'finishMessage',
      [k.lease, k.events, k.channel, k.messages, k.inbox, k.history, k.meta, k.fence],
      [
        fence,
        id,
        encodeEventBody(finalEvent),
        IDLE,
        this.settings.eventsMaxLen,
        this.settings.historyMaxEntries,
        this.settings.sessionTtlSeconds,
        before.length,
        ...before,
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
