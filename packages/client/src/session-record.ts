import type { OutboxEntry, PersistedSession, SessionStorage } from './session-storage.js';

/**
 * The client's persisted part: session credentials and the outbox.
 *
 * The tabs of a session share one storage (localStorage), so each change is applied to what is
 * stored at that moment, never by saving this tab's view over it: a save here cannot drop a chat
 * another tab has not had acked, and a reload resends every chat any tab left. This tab's view
 * (what it shows and resends) is what it loaded, plus what it typed, less what it was acked for,
 * refused or cancelled.
 */
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

  /** This tab's unacknowledged chats, oldest first (a new array after each change). */
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
    const append = (outbox: OutboxEntry[]) => [...without(outbox, entry.id), entry];
    this.value = { ...this.value, outbox: append(this.value.outbox) };
    this.update((stored) => ({ ...stored, outbox: append(stored.outbox) }));
  }

  /** Removes a chat from the outbox; true if this tab held it. */
  remove(id: string): boolean {
    if (!this.has(id)) return false;
    this.value = { ...this.value, outbox: without(this.value.outbox, id) };
    this.update((stored) => ({ ...stored, outbox: without(stored.outbox, id) }));
    return true;
  }

  setCredentials(sessionId: string, token: string): void {
    this.value = { ...this.value, sessionId, token };
    this.update((stored) => ({ ...stored, sessionId, token }));
  }

  /**
   * The token no longer opens the session: forget it, keep the outbox. If another tab has stored
   * other credentials meanwhile (its new session after its own 4401), take those instead, so
   * that the tabs end up on one session rather than each starting its own.
   */
  forgetCredentials(): void {
    const { sessionId, token } = this.value;
    const stored = this.update((current) =>
      current.sessionId === sessionId && current.token === token
        ? { outbox: current.outbox }
        : current,
    );
    this.value = { ...stored, outbox: this.value.outbox };
  }

  /** Applies a change to what is stored now (read-modify-write), saves it and returns it. */
  private update(change: (stored: PersistedSession) => PersistedSession): PersistedSession {
    // Nothing readable stored (first save, cleared, unreadable): this tab's view is the base.
    const next = change(this.storage.load() ?? this.value);
    this.storage.save(next);
    return next;
  }
}

function without(outbox: readonly OutboxEntry[], id: string): OutboxEntry[] {
  return outbox.filter((entry) => entry.id !== id);
}
