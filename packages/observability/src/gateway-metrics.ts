import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What a gateway counts, as methods; label values are bounded sets, never session ids. */
export class GatewayMetrics {
  private readonly connections: Gauge;
  private readonly opened: Counter;
  private readonly closed: Counter<'code'>;
  private readonly received: Counter<'type'>;
  private readonly sent: Counter;
  private readonly errors: Counter<'reason'>;
  private readonly backpressure: Counter;
  private readonly enqueued: Counter;
  private readonly firstDelta: Histogram;
  private readonly processing: Gauge;
  private readonly draining: Gauge;
  private readonly resumes: Counter<'outcome'>;
  private readonly slowConsumers: Counter<'step'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.connections = new Gauge({
      name: 'chorus_ws_connections',
      help: 'Open WebSocket connections on this gateway.',
      registers,
    });
    this.opened = new Counter({
      name: 'chorus_ws_connections_opened_total',
      help: 'WebSocket connections opened.',
      registers,
    });
    this.closed = new Counter({
      name: 'chorus_ws_connections_closed_total',
      help: 'WebSocket connections closed, by close code.',
      labelNames: ['code'],
      registers,
    });
    this.received = new Counter({
      name: 'chorus_ws_messages_received_total',
      help: 'Frames received from clients, by frame type (invalid for frames that did not parse).',
      labelNames: ['type'],
      registers,
    });
    this.sent = new Counter({
      name: 'chorus_ws_messages_sent_total',
      help: 'Frames sent to clients.',
      registers,
    });
    this.errors = new Counter({
      name: 'chorus_ws_errors_total',
      help: 'Errors answered to clients or met while serving them, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.backpressure = new Counter({
      name: 'chorus_ws_backpressure_events_total',
      help: 'Sends that found a socket with buffered, unsent data.',
      registers,
    });
    this.enqueued = new Counter({
      name: 'chorus_chat_jobs_enqueued_total',
      help: 'Chat jobs queued for sessions no worker held (adds while the same job waits included).',
      registers,
    });
    this.processing = new Gauge({
      name: 'chorus_sessions_processing',
      help: 'Sessions with a socket on this gateway whose message is being answered.',
      registers,
    });
    this.draining = new Gauge({
      name: 'chorus_gateway_draining',
      help: '1 while this gateway drains (after SIGTERM), else 0.',
      registers,
    });
    this.slowConsumers = new Counter({
      name: 'chorus_ws_slow_consumer_total',
      help: 'Slow sockets: taken off live delivery (held), deltas merged for them, caught up, closed with 4413, or live events held during a replay dropped to be read from the log (catch_up_dropped).',
      labelNames: ['step'],
      registers,
    });
    this.resumes = new Counter({
      name: 'chorus_resume_total',
      help: 'Replays requested with lastEventId or resume, by outcome (replayed, reset, invalid).',
      labelNames: ['outcome'],
      registers,
    });
    this.firstDelta = new Histogram({
      name: 'chorus_reply_first_delta_seconds',
      help: 'Time from a chat ack to the first reply delta forwarded by this gateway.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  connectionOpened(): void {
    this.opened.inc();
    this.connections.inc();
  }
  connectionClosed(code: number): void {
    this.closed.inc({ code: String(code) });
    this.connections.dec();
  }
  frameReceived(type: string): void {
    this.received.inc({ type });
  }
  framesSent(count = 1): void {
    this.sent.inc(count);
  }
  error(reason: string): void {
    this.errors.inc({ reason });
  }
  backpressured(): void {
    this.backpressure.inc();
  }
  chatEnqueued(): void {
    this.enqueued.inc();
  }
  sessionsProcessing(count: number): void {
    this.processing.set(count);
  }
  drainStarted(): void {
    this.draining.set(1);
  }
  slowConsumer(step: 'held' | 'merged' | 'caught_up' | 'closed' | 'catch_up_dropped'): void {
    this.slowConsumers.inc({ step });
  }
  resumed(outcome: 'replayed' | 'reset' | 'invalid'): void {
    this.resumes.inc({ outcome });
  }
  firstDeltaObserved(seconds: number): void {
    this.firstDelta.observe(seconds);
  }
}
