import type { AgentLogEvent } from '@chorus/protocol';

type Level = AgentLogEvent['level'];

const MAX_MESSAGE_CHARS = 300;

/**
 * The `agent.log` events of one message, in order, at most `limit` of them (then one line says
 * how many were dropped). Each message has its own, so concurrent jobs never share a buffer.
 */
export class AgentLog {
  private written = 0;
  private dropped = 0;
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | null = null;

  constructor(
    private readonly append: (event: AgentLogEvent) => Promise<void>,
    private readonly limit: number,
  ) {}

  /** Queues a line; safe to call without awaiting (from callbacks), order is kept. */
  write(agent: string, level: Level, category: string, message: string): Promise<void> {
    if (this.written >= this.limit) {
      this.dropped++;
      return this.chain;
    }
    this.written++;
    return this.enqueue(agent, level, category, message);
  }

  /** Waits for every line so far; says how many were dropped. Throws what a write threw. */
  async close(agent: string): Promise<void> {
    if (this.dropped > 0) {
      await this.enqueue(
        agent,
        'info',
        'log',
        `${this.dropped} more log lines of this answer were dropped`,
      );
      this.dropped = 0;
    }
    await this.chain;
    if (this.failure) throw this.failure;
  }

  private enqueue(agent: string, level: Level, category: string, message: string): Promise<void> {
    const event: AgentLogEvent = {
      type: 'agent.log',
      agent,
      level,
      category,
      message:
        message.length > MAX_MESSAGE_CHARS
          ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…`
          : message,
      ts: Date.now(),
    };
    this.chain = this.chain
      .then(() => (this.failure ? undefined : this.append(event)))
      .catch((error: unknown) => {
        this.failure ??= error instanceof Error ? error : new Error(String(error));
      });
    return this.chain;
  }
}
