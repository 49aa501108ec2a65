import type { SessionEvent } from '@chorus/protocol';
import { describe, expect, it } from 'vitest';
import {
  addLocalMessage,
  applyEvent,
  EMPTY_CONVERSATION,
  markAcked,
  resetConversation,
  type Conversation,
} from './conversation.js';

let seq = 0;
const ev = (body: Record<string, unknown>) =>
  ({ eventId: `1-${++seq}`, ...body }) as unknown as SessionEvent;
const apply = (conversation: Conversation, ...events: SessionEvent[]) =>
  events.reduce(applyEvent, conversation);

describe('conversation', () => {
  it('assembles a reply from deltas, per agent, and takes reply.end as the truth', () => {
    let c = addLocalMessage(EMPTY_CONVERSATION, { id: 'm1', text: 'hi', ts: 1 });
    expect(c.messages[0]?.status).toBe('queued');
    c = markAcked(c, 'm1');
    c = apply(
      c,
      ev({ type: 'user.message', id: 'm1', text: 'hi', ts: 2 }),
      ev({ type: 'status', state: 'processing', replyTo: 'm1' }),
      ev({ type: 'reply.start', replyTo: 'm1', agent: 'tutor' }),
      ev({ type: 'reply.delta', replyTo: 'm1', agent: 'tutor', text: 'Hello ' }),
      ev({ type: 'reply.delta', replyTo: 'm1', agent: 'critic', text: 'and ' }),
      ev({ type: 'reply.delta', replyTo: 'm1', agent: 'critic', text: 'more' }),
    );
    expect(c.processing).toBe(true);
    expect(c.activeId).toBe('m1');
    expect(c.messages[0]).toMatchObject({ status: 'answering' });
    expect(c.messages[0]?.reply).toMatchObject({
      text: 'Hello and more',
      agents: ['tutor', 'critic'],
      parts: [
        { agent: 'tutor', text: 'Hello ' },
        { agent: 'critic', text: 'and more' },
      ],
      done: false,
    });
    c = apply(
      c,
      ev({
        type: 'reply.end',
        replyTo: 'm1',
        agent: 'tutor',
        agents: ['tutor', 'critic'],
        text: 'Hello and more',
      }),
      ev({ type: 'status', state: 'idle' }),
    );
    expect(c.messages[0]).toMatchObject({ status: 'done', reply: { done: true } });
    expect(c.messages[0]?.reply?.parts).toHaveLength(2);
    expect(c.processing).toBe(false);
    expect(c.activeId).toBeUndefined();
  });

  it('a second reply.start replaces what the first streamed', () => {
    const c = apply(
      EMPTY_CONVERSATION,
      ev({ type: 'user.message', id: 'm', text: 'q', ts: 1 }),
      ev({ type: 'reply.start', replyTo: 'm', agent: 'tutor' }),
      ev({ type: 'reply.delta', replyTo: 'm', agent: 'tutor', text: 'first try' }),
      ev({ type: 'reply.start', replyTo: 'm', agent: 'tutor' }),
      ev({ type: 'reply.delta', replyTo: 'm', agent: 'tutor', text: 'second' }),
    );
    expect(c.messages[0]?.reply?.text).toBe('second');
  });

  it('reply.end replaces a text that does not match the deltas, and marks cancels', () => {
    const c = apply(
      EMPTY_CONVERSATION,
      ev({ type: 'user.message', id: 'm', text: 'q', ts: 1 }),
      ev({ type: 'reply.delta', replyTo: 'm', agent: 'tutor', text: 'partial' }),
      ev({
        type: 'reply.end',
        replyTo: 'm',
        agent: 'tutor',
        agents: ['tutor'],
        text: 'part',
        cancelled: true,
      }),
    );
    expect(c.messages[0]).toMatchObject({
      status: 'cancelled',
      reply: { text: 'part', parts: [{ agent: 'tutor', text: 'part' }], cancelled: true },
    });
  });

  it('errors end their message; replies to unknown messages still show', () => {
    const c = apply(
      EMPTY_CONVERSATION,
      ev({ type: 'error', code: 'llm_unavailable', message: 'down', replyTo: 'x' }),
      ev({ type: 'error', code: 'internal', message: 'oops' }),
    );
    expect(c.messages[0]).toMatchObject({
      id: 'x',
      status: 'error',
      error: { code: 'llm_unavailable' },
    });
    expect(c.lastError).toEqual({ code: 'internal', message: 'oops' });
  });

  it('stored messages go before queued ones; reset keeps only the outbox', () => {
    let c = addLocalMessage(EMPTY_CONVERSATION, { id: 'mine', text: 'later', ts: 5 });
    c = apply(c, ev({ type: 'user.message', id: 'other', text: 'earlier', ts: 1 }));
    expect(c.messages.map((m) => m.id)).toEqual(['other', 'mine']);
    c = resetConversation(c, new Set(['mine']));
    expect(c.messages.map((m) => m.id)).toEqual(['mine']);
  });

  it('after a reset, what the replay shows goes around kept messages by where they were stored', () => {
    let c = addLocalMessage(EMPTY_CONVERSATION, { id: 'stored', text: 'a', ts: 1 });
    c = addLocalMessage(c, { id: 'unsent', text: 'b', ts: 2 });
    c = applyEvent(c, { eventId: '5-0', type: 'user.message', id: 'stored', text: 'a', ts: 1 });
    c = resetConversation(c, new Set(['stored', 'unsent']));
    // The window starts after stored's user.message; 'gone' is known by its reply only.
    c = apply(
      c,
      { eventId: '7-0', type: 'user.message', id: 'x', text: 'x', ts: 7 },
      { eventId: '8-0', type: 'reply.end', replyTo: 'gone', agent: 'a', agents: [], text: 'r' },
    );
    expect(c.messages.map((m) => [m.id, m.status])).toEqual([
      ['stored', 'queued'],
      ['x', 'sent'],
      ['gone', 'done'],
      ['unsent', 'queued'],
    ]);
  });

  it('keeps the last agent.log lines, and returns the same object when nothing changed', () => {
    let c = EMPTY_CONVERSATION;
    for (let i = 0; i < 120; i++) {
      c = apply(
        c,
        ev({
          type: 'agent.log',
          agent: 'a',
          level: 'info',
          category: 'route',
          message: `${i}`,
          ts: i,
        }),
      );
    }
    expect(c.activity).toHaveLength(100);
    expect(c.activity[99]?.message).toBe('119');
    expect(markAcked(c, 'nope')).toBe(c);
  });
});
