/** What the client needs from its host, looked up defensively: browsers, Node and workers. */

interface CryptoLike {
  randomUUID?: () => string;
  getRandomValues?: (array: Uint8Array) => Uint8Array;
}

/** 32 hex characters: a UUID without dashes, which fits the protocol's chat id rule. */
export function randomChatId(): string {
  const crypto = (globalThis as { crypto?: CryptoLike }).crypto;
  // randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
  if (crypto?.randomUUID) return crypto.randomUUID().replaceAll('-', '');
  const bytes = new Uint8Array(16);
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** UTF-8 length, as the gateway counts `maxMessageBytes`. */
export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** Follows the browser's online/offline events; returns the function that stops following. */
export function watchNetwork(handlers: { online: () => void; offline: () => void }): () => void {
  const target = globalThis as Partial<EventTargetLike>;
  if (
    typeof target.addEventListener !== 'function' ||
    typeof target.removeEventListener !== 'function'
  ) {
    return () => undefined;
  }
  const { online, offline } = handlers;
  target.addEventListener('online', online);
  target.addEventListener('offline', offline);
  return () => {
    target.removeEventListener?.('online', online);
    target.removeEventListener?.('offline', offline);
  };
}
