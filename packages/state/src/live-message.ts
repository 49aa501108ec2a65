/**
 * What travels on a session's pub/sub channel: events (as the Lua `publish` sends them: those of
 * one script, in order) and control messages between gateways.
 */
export type LiveMessage =
  { kind: 'events'; events: LiveEvent[] } | { kind: 'evict'; connectionId: string; code: number };

export interface LiveEvent {
  eventId: string;
  /** The event's JSON, as stored. */
  body: string;
}

export function decodeLiveMessage(raw: string): LiveMessage | null {
  if (raw.startsWith('!')) {
    try {
      const value = JSON.parse(raw.slice(1)) as {
        kind?: unknown;
        connectionId?: unknown;
        code?: unknown;
      };
      if (
        value.kind === 'evict' &&
        typeof value.connectionId === 'string' &&
        typeof value.code === 'number'
      ) {
        return { kind: 'evict', connectionId: value.connectionId, code: value.code };
      }
    } catch {
      return null;
    }
    return null;
  }
  // `<eventId>\n<body>` per event, joined by `\n`: the bodies are JSON, so hold no newline.
  const lines = raw.split('\n');
  if (lines.length % 2 !== 0) return null;
  const events: LiveEvent[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    if (lines[i] === '' || lines[i + 1] === '') return null;
    events.push({ eventId: lines[i]!, body: lines[i + 1]! });
  }
  return { kind: 'events', events };
}

export function encodeControl(message: Extract<LiveMessage, { kind: 'evict' }>): string {
  return `!${JSON.stringify(message)}`;
}
