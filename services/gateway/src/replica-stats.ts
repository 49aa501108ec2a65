import type { GatewayMetrics } from '@chorus/observability';

/** How many sockets of each session this replica holds (the session fan-out knows). */
export interface SessionCounts {
  readonly sessionCount: number;
  socketsOf(sessionId: string): number;
}

const NO_SESSIONS: SessionCounts = { sessionCount: 0, socketsOf: () => 0 };

/** This replica's own figures for /health and heartbeats, kept beside the Prometheus metrics. */
export class ReplicaStats {
  activeConnections = 0;
  totalConnections = 0;
  totalMessages = 0;
  totalErrors = 0;
  private sessions: SessionCounts = NO_SESSIONS;
  private readonly processing = new Set<string>();

  constructor(readonly metrics: GatewayMetrics) {}

  /** Where the per-session socket counts come from (one index of sessions per gateway). */
  countSessionsWith(sessions: SessionCounts): void {
    this.sessions = sessions;
  }

  connectionOpened(): void {
    this.activeConnections++;
    this.totalConnections++;
    this.metrics.connectionOpened();
  }

  /** `lastHere`: the session has no other socket on this replica. */
  connectionClosed(sessionId: string, code: number, lastHere: boolean): void {
    this.activeConnections--;
    if (lastHere && this.processing.delete(sessionId)) {
      this.metrics.sessionsProcessing(this.processing.size);
    }
    this.metrics.connectionClosed(code);
  }

  frameReceived(type: string): void {
    this.totalMessages++;
    this.metrics.frameReceived(type);
  }

  error(reason: string): void {
    this.totalErrors++;
    this.metrics.error(reason);
  }

  sessionState(sessionId: string, processing: boolean): void {
    if (processing && this.sessions.socketsOf(sessionId) > 0) this.processing.add(sessionId);
    else this.processing.delete(sessionId);
    this.metrics.sessionsProcessing(this.processing.size);
  }

  get uniqueSessions(): number {
    return this.sessions.sessionCount;
  }

  get processingConnections(): number {
    let count = 0;
    for (const sessionId of this.processing) count += this.sessions.socketsOf(sessionId);
    return count;
  }
}
