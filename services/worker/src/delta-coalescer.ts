/**
 * Gathers streamed text and writes it at most once per window, in order, so a long reply costs
 * tens of events rather than one per token. `write` only queues (see EventWriter); a write that
 * throws from the window's timer surfaces on the next push or flush.
 */
export class DeltaCoalescer {
  private buffer = '';
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly windowMs: number,
    private readonly write: (text: string) => void,
  ) {}

  push(text: string): void {
    if (this.failure) throw this.failure;
    this.buffer += text;
    if (this.windowMs === 0) this.drain();
    else
      this.timer ??= setTimeout(() => {
        try {
          this.drain();
        } catch (error) {
          this.failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }, this.windowMs);
  }

  /** Writes what is buffered now. */
  flush(): void {
    if (this.failure) throw this.failure;
    this.drain();
  }

  /** Drops what is buffered and stops the timer (the reply ends another way). */
  discard(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.buffer = '';
  }

  private drain(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.buffer === '') return;
    const text = this.buffer;
    this.buffer = '';
    this.write(text);
  }
}
