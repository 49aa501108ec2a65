import type { Logger, WorkerMetrics } from '@chorus/observability';
import type {
  MessageInbox,
  SessionDirectory,
  SessionEvents,
  SessionLease,
  TokenBudget,
} from '@chorus/state';
import type { GraphTools } from './knowledge/graph-tools.js';
import type { KnowledgeBase } from './knowledge/knowledge-base.js';
import type { TeamSpec } from './team/team-config.js';
import type { ChatModel } from './providers/chat-model.js';
import type { AbandonmentWatch, CancelListener } from './stop-signals.js';

export interface WorkerSettings {
  workerId: string;
  leaseTtlMs: number;
  jobTimeoutMs: number;
  deltaFlushMs: number;
  historyMaxMessages: number;
  replyGraceMs: number;
  historyTokenBudget: number;
  agentLogMax: number;
}

/** What job processing uses; built once in worker.ts. */
export interface WorkerContext {
  settings: WorkerSettings;
  log: Logger;
  metrics: WorkerMetrics;
  events: SessionEvents;
  inbox: MessageInbox;
  lease: SessionLease;
  budget: TokenBudget;
  directory: SessionDirectory;
  cancels: CancelListener;
  abandonment: AbandonmentWatch;
  knowledge: KnowledgeBase;
  tools: GraphTools;
  team: TeamSpec;
  model: ChatModel;
}
