/**
 * The part of a WebSocket the client uses. Browsers' WebSocket and the `ws` package both fit,
 * so Node (which has no global WebSocket in version 20) passes `ws`'s class.
 */

// Handlers declared through a method keep their parameter bivariant, as the DOM's own are:
// that is what lets `ws`'s richer event types fit without a cast.
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

export interface SocketMessageEvent {
  data: unknown;
}

export interface SocketCloseEvent {
  code: number;
  reason: string;
}

export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<SocketMessageEvent> | null;
  onclose: Handler<SocketCloseEvent> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `WebSocket.OPEN`, the same in every implementation. */
export const SOCKET_OPEN = 1;

/** The environment's WebSocket, if it has one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}
