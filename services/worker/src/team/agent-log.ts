import type { AgentLogEvent } from '@chorus/protocol';

type Level = AgentLogEvent['level'];

const MAX_MESSAGE_CHARS = 300;

/**
 * The `agent.log` events of one message, in order, at most `limit` of them (then one line says
 * how many were dropped). Each message has its own, so concurrent jobs never share a buffer.
 * `append` queues the event (see EventWriter), so lines keep their place among the answer's
 * other events.
 */
export class AgentLog {
  private written = 0;
  private dropped = 0;
  private failure: Error | null = null;

  constructor(
    private readonly append: (event: AgentLogEvent) => void,
    private readonly limit: number,
  ) {}

  /** Queues a line; never throws (a failed append surfaces on `close`). */
  write(agent: string, level: Level, category: string, message: string): void {
    if (this.written >= this.limit) {
      this.dropped++;
      return;
    }
    this.written++;
    this.enqueue(agent, level, category, message);
  }

  /** Says how many lines were dropped. Throws what an append threw. */
  close(agent: string): void {
    if (this.dropped > 0) {
      this.enqueue(
        agent,
        'info',
        'log',
        `${this.dropped} more log lines of this answer were dropped`,
      );
      this.dropped = 0;
    }
    if (this.failure) throw this.failure;
  }

  private enqueue(agent: string, level: Level, category: string, message: string): void {
    if (this.failure) return;
    try {
      this.append({
        type: 'agent.log',
        agent,
        level,
        category,
        message:
          message.length > MAX_MESSAGE_CHARS
            ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…`
            : message,
        ts: Date.now(),
      });
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
    }
  }
}
