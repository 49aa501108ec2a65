import { describe, expect, it } from 'vitest';
import { memorySession, webStorageSession, type WebStorageLike } from './session-storage.js';

const fakeStorage = (
  initial: Record<string, string> = {},
): WebStorageLike & { data: Record<string, string> } => {
  const data = { ...initial };
  return {
    data,
    getItem: (key) => data[key] ?? null,
    setItem: (key, value) => {
      data[key] = value;
    },
    removeItem: (key) => {
      delete data[key];
    },
  };
};

describe('session storage', () => {
  it('round-trips the session and the outbox', () => {
    const storage = webStorageSession(fakeStorage());
    const session = { sessionId: 's', token: 't', outbox: [{ id: 'a', text: 'hi', ts: 1 }] };
    storage.save(session);
    expect(storage.load()).toEqual(session);
    const memory = memorySession(session);
    expect(memory.load()).toEqual(session);
  });

  it('drops what is malformed instead of throwing', () => {
    expect(webStorageSession(fakeStorage({ 'chorus.session': '{nope' })).load()).toBeNull();
    const odd = JSON.stringify({ sessionId: 1, token: 't', outbox: [{ id: 'a' }, 'x', null] });
    expect(webStorageSession(fakeStorage({ 'chorus.session': odd })).load()).toEqual({
      outbox: [],
    });
    const throwing: WebStorageLike = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('quota');
      },
      removeItem: () => undefined,
    };
    const storage = webStorageSession(throwing);
    expect(storage.load()).toBeNull();
    expect(() => storage.save({ outbox: [] })).not.toThrow();
  });
});
