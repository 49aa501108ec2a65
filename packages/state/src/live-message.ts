/**
 * What travels on a session's pub/sub channel: events (as the Lua `emit` publishes them) and
 * control messages between gateways.
 */
export type LiveMessage =
  | { kind: 'event'; eventId: string; body: string }
  | { kind: 'evict'; connectionId: string; code: number };

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
  const newline = raw.indexOf('\n');
  if (newline < 1) return null;
  return { kind: 'event', eventId: raw.slice(0, newline), body: raw.slice(newline + 1) };
}

export function encodeControl(message: Exclude<LiveMessage, { kind: 'event' }>): string {
  return `!${JSON.stringify(message)}`;
}
