import type { GatewayMetrics } from '@chorus/observability';

/** This replica's own figures for /health and heartbeats, kept beside the Prometheus metrics. */
export class ReplicaStats {
  activeConnections = 0;
  totalConnections = 0;
  totalMessages = 0;
  totalErrors = 0;
  private readonly socketsBySession = new Map<string, number>();
  private readonly processing = new Set<string>();

  constructor(readonly metrics: GatewayMetrics) {}

  connectionOpened(sessionId: string): void {
    this.activeConnections++;
    this.totalConnections++;
    this.socketsBySession.set(sessionId, (this.socketsBySession.get(sessionId) ?? 0) + 1);
    this.metrics.connectionOpened();
  }

  connectionClosed(sessionId: string, code: number): void {
    this.activeConnections--;
    const left = (this.socketsBySession.get(sessionId) ?? 1) - 1;
    if (left > 0) this.socketsBySession.set(sessionId, left);
    else {
      this.socketsBySession.delete(sessionId);
      this.processing.delete(sessionId);
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
    if (processing && this.socketsBySession.has(sessionId)) this.processing.add(sessionId);
    else this.processing.delete(sessionId);
    this.metrics.sessionsProcessing(this.processing.size);
  }

  get uniqueSessions(): number {
    return this.socketsBySession.size;
  }

  get processingConnections(): number {
    let count = 0;
    for (const sessionId of this.processing) count += this.socketsBySession.get(sessionId) ?? 0;
    return count;
  }
}
