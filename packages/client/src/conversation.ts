import type { ErrorCode, SessionEvent } from '@chorus/protocol';
import { compareEventIds } from './event-id.js';

/**
 * The conversation as the user sees it, rebuilt from session events. Every function here is
 * pure and returns a new object when something changed, so that UI libraries can compare by
 * identity.
 */

export type MessageStatus =
  /** typed, not yet acknowledged (it is in the outbox) */
  | 'queued'
  /** stored by the gateway; waiting for its turn */
  | 'sent'
  /** the agent team has started on it */
  | 'processing'
  /** the reply is streaming */
  | 'answering'
  | 'done'
  | 'cancelled'
  | 'error';

/** A run of reply text spoken by one agent. */
export interface ReplyPart {
  agent: string;
  text: string;
}

export interface Reply {
  /** The agent that leads the answer. */
  agent: string;
  /** Every agent that spoke (complete once `done`). */
  agents: string[];
  parts: ReplyPart[];
  /** The whole text so far: the parts joined. */
  text: string;
  done: boolean;
  cancelled: boolean;
  usage?: { inputTokens: number; outputTokens: number };
}

export interface ChatMessage {
  /** The chat id (client-generated); replies refer to it. */
  id: string;
  text: string;
  ts: number;
  status: MessageStatus;
  /** Where the gateway stored it: the eventId of its `user.message`, once this client saw it. */
  eventId?: string;
  reply?: Reply;
  error?: { code: ErrorCode; message: string };
}

export interface AgentActivity {
  eventId: string;
  agent: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  category: string;
  message: string;
  ts: number;
}

export interface Conversation {
  messages: readonly ChatMessage[];
  /** The session's processing flag (from `status` events). */
  processing: boolean;
  /** The message being worked on, while processing. */
  activeId?: string;
  /** The most recent agent.log lines, oldest first. */
  activity: readonly AgentActivity[];
  /** The last session error that belonged to no message. */
  lastError?: { code: ErrorCode; message: string };
}

export const ACTIVITY_LIMIT = 100;

export const EMPTY_CONVERSATION: Conversation = { messages: [], processing: false, activity: [] };

const FINAL: ReadonlySet<MessageStatus> = new Set(['done', 'cancelled', 'error']);

export function isFinal(status: MessageStatus): boolean {
  return FINAL.has(status);
}

/** Adds a message the user just typed (or one restored from the outbox). */
export function addLocalMessage(
  conversation: Conversation,
  entry: { id: string; text: string; ts: number },
): Conversation {
  if (conversation.messages.some((m) => m.id === entry.id)) return conversation;
  const message: ChatMessage = { ...entry, status: 'queued' };
  return { ...conversation, messages: [...conversation.messages, message] };
}

/** The gateway acknowledged the chat: it will be answered. */
export function markAcked(conversation: Conversation, id: string): Conversation {
  return updateMessage(conversation, id, (m) =>
    m.status === 'queued' ? { ...m, status: 'sent' } : m,
  );
}

/** Ends a message locally: cancelled before it was sent, or refused by the gateway. */
export function endMessage(
  conversation: Conversation,
  id: string,
  ending: { cancelled: true } | { error: { code: ErrorCode; message: string } },
): Conversation {
  return updateMessage(conversation, id, (m) =>
    isFinal(m.status)
      ? m
      : 'error' in ending
        ? { ...m, status: 'error', error: ending.error }
        : { ...m, status: 'cancelled' },
  );
}

/**
 * After `reset` or a new session: keep only what is still waiting for its ack, as queued again
 * (one whose user.message came but not its ack as well: what follows shows it again if stored).
 * A kept message keeps its eventId, so that the replay puts what it shows around it as before,
 * even when the window no longer holds its user.message.
 */
export function resetConversation(
  conversation: Conversation,
  keep: ReadonlySet<string>,
): Conversation {
  return {
    messages: conversation.messages
      .filter((m) => keep.has(m.id))
      .map(({ id, text, ts, eventId }) => ({
        id,
        text,
        ts,
        status: 'queued',
        ...(eventId === undefined ? {} : { eventId }),
      })),
    processing: false,
    activity: [],
  };
}

/** Applies one session event (already de-duplicated by the client). */
export function applyEvent(conversation: Conversation, event: SessionEvent): Conversation {
  switch (event.type) {
    case 'user.message':
      return upsertUserMessage(conversation, event);
    case 'status': {
      const processing = event.state === 'processing';
      const next: Conversation = { ...conversation, processing };
      if (processing && event.replyTo) {
        next.activeId = event.replyTo;
        return updateMessage(next, event.replyTo, (m) =>
          m.status === 'queued' || m.status === 'sent' ? { ...m, status: 'processing' } : m,
        );
      }
      if (!processing) delete next.activeId;
      return next;
    }
    case 'reply.start':
      // A second reply.start (a retried job) replaces what the first one streamed.
      return updateOrCreate(conversation, event, (m) => ({
        ...m,
        status: 'answering',
        reply: {
          agent: event.agent,
          agents: [event.agent],
          parts: [],
          text: '',
          done: false,
          cancelled: false,
        },
      }));
    case 'reply.delta':
      return updateOrCreate(conversation, event, (m) => {
        if (isFinal(m.status)) return m;
        const reply = m.reply ?? {
          agent: event.agent,
          agents: [event.agent],
          parts: [],
          text: '',
          done: false,
          cancelled: false,
        };
        return { ...m, status: 'answering', reply: appendDelta(reply, event.agent, event.text) };
      });
    case 'reply.end':
      return updateOrCreate(conversation, event, (m) => {
        const parts = m.reply?.text === event.text ? m.reply.parts : [];
        const reply: Reply = {
          agent: event.agent,
          agents: event.agents.length > 0 ? event.agents : [event.agent],
          parts:
            parts.length > 0 || event.text === ''
              ? parts
              : [{ agent: event.agent, text: event.text }],
          text: event.text,
          done: true,
          cancelled: event.cancelled === true,
        };
        if (event.usage) reply.usage = event.usage;
        const ended: ChatMessage = { ...m, status: reply.cancelled ? 'cancelled' : 'done', reply };
        delete ended.error;
        return ended;
      });
    case 'agent.log': {
      const entry: AgentActivity = {
        eventId: event.eventId,
        agent: event.agent,
        level: event.level,
        category: event.category,
        message: event.message,
        ts: event.ts,
      };
      const activity = [...conversation.activity, entry];
      if (activity.length > ACTIVITY_LIMIT) activity.splice(0, activity.length - ACTIVITY_LIMIT);
      return { ...conversation, activity };
    }
    case 'error': {
      const { replyTo, eventId, code, message } = event;
      const error = { code, message };
      if (!replyTo) return { ...conversation, lastError: error };
      return updateOrCreate(conversation, { replyTo, eventId }, (m) => ({
        ...m,
        status: 'error',
        error,
      }));
    }
    default:
      return unreachable(event);
  }
}

function appendDelta(reply: Reply, agent: string, text: string): Reply {
  const parts = [...reply.parts];
  const last = parts[parts.length - 1];
  if (last && last.agent === agent) parts[parts.length - 1] = { agent, text: last.text + text };
  else parts.push({ agent, text });
  const agents = reply.agents.includes(agent) ? reply.agents : [...reply.agents, agent];
  return { ...reply, agents, parts, text: reply.text + text };
}

function upsertUserMessage(
  conversation: Conversation,
  { id, text, ts, eventId }: { id: string; text: string; ts: number; eventId: string },
): Conversation {
  if (conversation.messages.some((m) => m.id === id)) {
    return updateMessage(conversation, id, (m) => ({
      ...m,
      text,
      ts,
      eventId,
      status: m.status === 'queued' ? 'sent' : m.status,
    }));
  }
  return insertStored(conversation, { id, text, ts, eventId, status: 'sent' }, eventId);
}

/**
 * Puts a message the gateway stored before `eventId` ahead of the first one that comes after it,
 * and nowhere else: what is already shown (a reset keeps what waits) does not move.
 */
function insertStored(
  conversation: Conversation,
  message: ChatMessage,
  eventId: string,
): Conversation {
  const messages = [...conversation.messages];
  const next = messages.findIndex((m) => comesAfter(m, eventId));
  messages.splice(next < 0 ? messages.length : next, 0, message);
  return { ...conversation, messages };
}

/**
 * Stored after `eventId`, or still waiting in this client's outbox with no sign of being stored
 * (it will be stored after everything the gateway sends now).
 */
function comesAfter(message: ChatMessage, eventId: string): boolean {
  if (message.eventId === undefined) return message.status === 'queued';
  return compareEventIds(message.eventId, eventId) > 0;
}

function updateMessage(
  conversation: Conversation,
  id: string,
  update: (message: ChatMessage) => ChatMessage,
): Conversation {
  const index = conversation.messages.findIndex((m) => m.id === id);
  const current = conversation.messages[index];
  if (!current) return conversation;
  const next = update(current);
  if (next === current) return conversation;
  const messages = [...conversation.messages];
  messages[index] = next;
  return { ...conversation, messages };
}

/**
 * Events about a message whose user.message fell out of the retained window still show, placed
 * as if stored just before the event: its own eventId is unknown.
 */
function updateOrCreate(
  conversation: Conversation,
  { replyTo: id, eventId }: { replyTo: string; eventId: string },
  update: (message: ChatMessage) => ChatMessage,
): Conversation {
  const known = conversation.messages.some((m) => m.id === id)
    ? conversation
    : insertStored(conversation, { id, text: '', ts: 0, status: 'sent' }, eventId);
  return updateMessage(known, id, update);
}

function unreachable(value: never): never {
  throw new Error(`unhandled session event ${JSON.stringify(value)}`);
}
