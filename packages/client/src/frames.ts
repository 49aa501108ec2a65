import type { ServerFrame, SessionEvent } from '@chorus/protocol';

const SESSION_EVENT_TYPES: ReadonlySet<string> = new Set([
  'user.message',
  'status',
  'reply.start',
  'reply.delta',
  'reply.end',
  'agent.log',
  'error',
]);
const SOCKET_FRAME_TYPES: ReadonlySet<string> = new Set([
  'welcome',
  'pong',
  'ack',
  'reset',
  'error',
]);

/**
 * Reads one text frame from the gateway. The gateway is trusted to send what PROTOCOL.md says;
 * this only makes sure the value has the shape the switch relies on (an object with a known
 * `type`, and a string `eventId` where there is one). Anything else is ignored, so that a newer
 * server's frame types do not break an older client.
 */
export function parseServerFrame(data: unknown): ServerFrame | null {
  if (typeof data !== 'string') return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { type, eventId } = value as { type?: unknown; eventId?: unknown };
  if (typeof type !== 'string') return null;
  if (eventId !== undefined && typeof eventId !== 'string') return null;
  const known =
    eventId !== undefined && type !== 'ack'
      ? SESSION_EVENT_TYPES.has(type)
      : SOCKET_FRAME_TYPES.has(type);
  return known ? (value as ServerFrame) : null;
}

/** Session events carry an eventId; `ack` carries one too but belongs to its socket. */
export function isSessionEvent(frame: ServerFrame): frame is SessionEvent {
  return 'eventId' in frame && typeof frame.eventId === 'string' && frame.type !== 'ack';
}
