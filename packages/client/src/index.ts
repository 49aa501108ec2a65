export { ChorusClient } from './chorus-client.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export {
  ACTIVITY_LIMIT,
  isFinal,
  type AgentActivity,
  type ChatMessage,
  type Conversation,
  type MessageStatus,
  type Reply,
  type ReplyPart,
} from './conversation.js';
export { compareEventIds } from './event-id.js';
export {
  DEFAULT_STORAGE_KEY,
  defaultSessionStorage,
  memorySession,
  webStorageSession,
  type OutboxEntry,
  type PersistedSession,
  type SessionStorage,
  type WebStorageLike,
} from './session-storage.js';
export type {
  SocketCloseEvent,
  SocketMessageEvent,
  WebSocketConstructor,
  WebSocketLike,
} from './socket.js';
export type {
  ChorusClientOptions,
  ChorusEvents,
  ChorusState,
  CloseReason,
  ConnectionInfo,
  ConnectionState,
  SessionErrorEvent,
} from './types.js';
export type {
  AckFrame,
  ResetFrame,
  ServerFrame,
  SessionEvent,
  SocketErrorFrame,
  WelcomeFrame,
} from '@chorus/protocol';
