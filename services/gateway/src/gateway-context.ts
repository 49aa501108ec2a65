import type { Queue } from 'bullmq';
import type { Logger } from '@chorus/observability';
import type {
  ChatJobData,
  ClientLimits,
  ClusterDirectory,
  GraphStore,
  KeySchema,
  MessageInbox,
  Redis,
  SessionDirectory,
  SessionEvents,
} from '@chorus/state';
import type { FirstDeltaClock } from './first-delta-clock.js';
import type { SessionFanout } from './session-fanout.js';
import type { SessionLister } from './session-lister.js';
import type { ReplicaStats } from './replica-stats.js';
import type { SessionTokens } from './session-token.js';

export interface GatewaySettings {
  gatewayId: string;
  version: string;
  heartbeatMs: number;
  maxMessageBytes: number;
  maxFrameBytes: number;
  maxBackpressureBytes: number;
  maxSocketsPerSession: number;
  allowedOrigins: string[];
  /** Take the client address from X-Forwarded-For (behind a trusted load balancer). */
  trustProxy: boolean;
  /** This process among the gateways: `<gatewayId>#<start ms>`. */
  instance: string;
}

/** What the socket and HTTP handlers use; built once in gateway.ts. */
export interface GatewayContext {
  settings: GatewaySettings;
  log: Logger;
  redis: Redis;
  keys: KeySchema;
  tokens: SessionTokens;
  directory: SessionDirectory;
  /** Lists sessions under this gateway, batched (see SessionLister). */
  lister: SessionLister;
  inbox: MessageInbox;
  events: SessionEvents;
  cluster: ClusterDirectory;
  clientLimits: ClientLimits;
  /** Live gateway instances, refreshed by the heartbeat loop. */
  liveInstances: string[];
  graph: GraphStore;
  queue: Queue<ChatJobData>;
  fanout: SessionFanout;
  stats: ReplicaStats;
  firstDelta: FirstDeltaClock;
  draining: boolean;
}
