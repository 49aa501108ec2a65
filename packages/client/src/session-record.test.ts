import { describe, expect, it } from 'vitest';
import { SessionRecord } from './session-record.js';
import {
  webStorageSession,
  type PersistedSession,
  type WebStorageLike,
} from './session-storage.js';

/** One localStorage shared by the tabs of an origin; each tab wraps it in its own record. */
const sharedStorage = (initial?: PersistedSession) => {
  const data = new Map<string, string>();
  const storage: WebStorageLike = {
    getItem: (key) => data.get(key) ?? null,
    setItem: (key, value) => void data.set(key, value),
    removeItem: (key) => void data.delete(key),
  };
  if (initial) webStorageSession(storage).save(initial);
  return {
    tab: () => new SessionRecord(webStorageSession(storage)),
    stored: () => webStorageSession(storage).load(),
  };
};
const entry = (id: string) => ({ id, text: `text of ${id}`, ts: 1 });
const ids = (session: PersistedSession | null) => session?.outbox.map((e) => e.id);

describe('SessionRecord shared by two tabs', () => {
  it('keeps the other tab’s unacked chats stored, so that a reload resends them', () => {
    const local = sharedStorage({ sessionId: 's1', token: 't1', outbox: [] });
    const a = local.tab();
    const b = local.tab();
    b.add(entry('typed-in-b')); // offline in B
    a.setCredentials('s1', 't1'); // A's welcome
    a.add(entry('typed-in-a'));
    expect(a.remove('typed-in-a')).toBe(true); // A's ack
    expect(ids(local.stored())).toEqual(['typed-in-b']);
    // B is closed before it reconnects; a reloaded tab holds (and so resends) B's chat.
    expect(local.tab().outbox).toEqual([entry('typed-in-b')]);
  });

  it('removes only what this tab was acked for, and never writes back what another one was', () => {
    const local = sharedStorage({ outbox: [entry('old')] });
    const a = local.tab();
    const b = local.tab();
    b.add(entry('new'));
    a.remove('old'); // A resent the chat left by an earlier page, and got its ack
    expect(ids(local.stored())).toEqual(['new']);
    // B still holds 'old' (its own resend gets the same ack), but saves no copy of it.
    expect(b.has('old')).toBe(true);
    b.add(entry('newer'));
    expect(ids(local.stored())).toEqual(['new', 'newer']);
    expect(b.remove('old')).toBe(true);
    expect(a.remove('gone')).toBe(false);
    expect(ids(local.stored())).toEqual(['new', 'newer']);
  });

  it('after 4401 in both tabs, the second one joins the session the first one started', () => {
    const local = sharedStorage({ sessionId: 's1', token: 'bad', outbox: [entry('m')] });
    const a = local.tab();
    const b = local.tab();
    a.forgetCredentials();
    expect(local.stored()).toEqual({ outbox: [entry('m')] });
    a.setCredentials('s2', 't2'); // A's new session
    b.add(entry('n')); // B, still on s1, saves no s1 credentials over s2
    expect(local.stored()).toMatchObject({ sessionId: 's2', token: 't2' });
    b.forgetCredentials(); // B's own 4401: s2 is not what was refused
    expect([b.sessionId, b.token]).toEqual(['s2', 't2']);
    expect(local.stored()).toEqual({
      sessionId: 's2',
      token: 't2',
      outbox: [entry('m'), entry('n')],
    });
  });
});
