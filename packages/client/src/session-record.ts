import type { OutboxEntry, PersistedSession, SessionStorage } from './session-storage.js';

/** The client's persisted part: session credentials and the outbox, saved on every change. */
export class SessionRecord {
  private value: PersistedSession;

  constructor(private readonly storage: SessionStorage) {
    this.value = storage.load() ?? { outbox: [] };
  }

  get sessionId(): string | undefined {
    return this.value.sessionId;
  }

  get token(): string | undefined {
    return this.value.token;
  }

  /** Chats not yet acknowledged, oldest first (a new array after each change). */
  get outbox(): readonly OutboxEntry[] {
    return this.value.outbox;
  }

  has(id: string): boolean {
    return this.value.outbox.some((entry) => entry.id === id);
  }

  ids(): Set<string> {
    return new Set(this.value.outbox.map((entry) => entry.id));
  }

  add(entry: OutboxEntry): void {
    this.save({ ...this.value, outbox: [...this.value.outbox, entry] });
  }

  /** Removes a chat from the outbox; true if it was there. */
  remove(id: string): boolean {
    if (!this.has(id)) return false;
    this.save({ ...this.value, outbox: this.value.outbox.filter((entry) => entry.id !== id) });
    return true;
  }

  setCredentials(sessionId: string, token: string): void {
    this.save({ ...this.value, sessionId, token });
  }

  /** The token no longer opens the session: forget it, keep the outbox. */
  forgetCredentials(): void {
    this.save({ outbox: this.value.outbox });
  }

  private save(value: PersistedSession): void {
    this.value = value;
    this.storage.save(value);
  }
}
