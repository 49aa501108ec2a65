import type { ErrorCode } from './codes.js';

/** Frames that belong to one socket only (no eventId). */
export interface WelcomeFrame {
  type: 'welcome';
  protocol: number;
  sessionId: string;
  token: string;
  connectionId: string;
  gatewayId: string;
  resumed: boolean;
  heartbeatMs: number;
  limits: { maxMessageBytes: number };
}
export interface PongFrame {
  type: 'pong';
  ts: number;
}
export interface AckFrame {
  type: 'ack';
  id: string;
  eventId: string;
}
export interface ResetFrame {
  type: 'reset';
  reason: 'history_truncated';
}
export interface SocketErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  replyTo?: string;
  /** `rate_limited` (extension): how long to wait before sending that chat again. */
  retryAfterMs?: number;
}

/**
 * Session events as stored and published, before the log assigns their eventId.
 * Each starts with `type` so that the eventId can be spliced in without re-serialising.
 */
export interface UserMessageEvent {
  type: 'user.message';
  id: string;
  text: string;
  ts: number;
}
export interface StatusEvent {
  type: 'status';
  state: 'processing' | 'idle';
  replyTo?: string;
}
export interface ReplyStartEvent {
  type: 'reply.start';
  replyTo: string;
  agent: string;
}
export interface ReplyDeltaEvent {
  type: 'reply.delta';
  replyTo: string;
  agent: string;
  text: string;
}
export interface ReplyEndEvent {
  type: 'reply.end';
  replyTo: string;
  agent: string;
  agents: string[];
  text: string;
  cancelled?: boolean;
  offline?: boolean;
  usage?: { inputTokens: number; outputTokens: number };
}
export interface AgentLogEvent {
  type: 'agent.log';
  agent: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  category: string;
  message: string;
  ts: number;
}
export interface SessionErrorEvent {
  type: 'error';
  code: ErrorCode;
  message: string;
  replyTo?: string;
}

export type SessionEventBody =
  | UserMessageEvent
  | StatusEvent
  | ReplyStartEvent
  | ReplyDeltaEvent
  | ReplyEndEvent
  | AgentLogEvent
  | SessionErrorEvent;

/** A session event as a client receives it. */
export type SessionEvent = SessionEventBody & { eventId: string };

export type ServerFrame =
  WelcomeFrame | PongFrame | AckFrame | ResetFrame | SocketErrorFrame | SessionEvent;

/** Serialises a session event body once; {@link withEventId} completes it per event. */
export function encodeEventBody(body: SessionEventBody): string {
  return JSON.stringify(body);
}

/** Adds the eventId to an encoded body without parsing it again. */
export function withEventId(eventId: string, encodedBody: string): string {
  return `{"eventId":${JSON.stringify(eventId)},${encodedBody.slice(1)}`;
}
