export { KeySchema, CHAT_QUEUE, type SessionKeys } from './keys.js';
export {
  createRedis,
  redisConnector,
  unsupportedRedis,
  MIN_REDIS_VERSION,
  type Redis,
  type ConnectionOptions,
} from './redis-connection.js';
export {
  decodeLiveMessage,
  encodeControl,
  type LiveEvent,
  type LiveMessage,
} from './live-message.js';
export { SessionEvents, type StoredEvent } from './session-events.js';
export {
  MessageInbox,
  type MessageRecord,
  type AcceptResult,
  type HistoryTurn,
  type InboxSettings,
} from './message-inbox.js';
export { SessionLease } from './session-lease.js';
export { SessionDirectory, type SocketEntry } from './session-directory.js';
export {
  ClusterDirectory,
  type ClusterView,
  type MemberView,
  type Figures,
} from './cluster-directory.js';
export { GraphStore, type Graph, type GraphNode, type GraphEdge } from './graph-store.js';
export { createChatQueue, enqueueChat, sessionJobKey, type ChatJobData } from './chat-queue.js';
export { ClientLimits, type Admission, type ClientLimitSettings } from './client-limits.js';
export { TokenBudget } from './token-budget.js';
export { SUBSCRIBER_PING_MS, SubscriberWatch, type WatchLog } from './subscriber-watch.js';
