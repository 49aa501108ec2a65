/** A chat typed but not yet acknowledged by a gateway. */
export interface OutboxEntry {
  id: string;
  text: string;
  ts: number;
}

/** What survives a reload: the session's credentials and the unsent chats. */
export interface PersistedSession {
  sessionId?: string;
  token?: string;
  outbox: OutboxEntry[];
}

/**
 * Where the client keeps its session. Synchronous, like localStorage. Each save is preceded by a
 * load and writes what was loaded with one change made: one tab's save keeps the others' chats.
 */
export interface SessionStorage {
  load(): PersistedSession | null;
  save(session: PersistedSession): void;
}

/** The subset of the Web Storage API that {@link webStorageSession} needs. */
export interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const DEFAULT_STORAGE_KEY = 'chorus.session';

/** Keeps the session in localStorage (or any Web Storage) under one key, as JSON. */
export function webStorageSession(
  storage: WebStorageLike,
  key: string = DEFAULT_STORAGE_KEY,
): SessionStorage {
  return {
    load: () => {
      try {
        return parsePersisted(storage.getItem(key));
      } catch {
        return null; // storage disabled (privacy mode): behave as if empty
      }
    },
    save: (session) => {
      try {
        storage.setItem(key, JSON.stringify(session));
      } catch {
        // Quota or privacy mode: the session lives on in memory only.
      }
    },
  };
}

/** Keeps the session in memory: for Node, tests, or pages that must not persist anything. */
export function memorySession(initial: PersistedSession | null = null): SessionStorage {
  let saved = initial ? JSON.stringify(initial) : null;
  return {
    load: () => parsePersisted(saved),
    save: (session) => {
      saved = JSON.stringify(session);
    },
  };
}

/** localStorage when the environment has a usable one, else memory. */
export function defaultSessionStorage(): SessionStorage {
  try {
    const storage = (globalThis as { localStorage?: WebStorageLike }).localStorage;
    if (storage) return webStorageSession(storage);
  } catch {
    // Reading localStorage throws in some sandboxed frames.
  }
  return memorySession();
}

const isString = (value: unknown): value is string => typeof value === 'string';

/** Reads stored JSON defensively: anything malformed is dropped, never thrown. */
function parsePersisted(raw: string | null): PersistedSession | null {
  if (!raw) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const record = value as Record<string, unknown>;
  const outbox = Array.isArray(record.outbox)
    ? record.outbox.filter(
        (entry): entry is OutboxEntry =>
          typeof entry === 'object' &&
          entry !== null &&
          isString((entry as OutboxEntry).id) &&
          isString((entry as OutboxEntry).text) &&
          typeof (entry as OutboxEntry).ts === 'number',
      )
    : [];
  const session: PersistedSession = { outbox };
  if (isString(record.sessionId) && isString(record.token)) {
    session.sessionId = record.sessionId;
    session.token = record.token;
  }
  return session;
}
