import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type JobOutcome =
  | 'completed'
  | 'failed'
  | 'llm_unavailable'
  | 'rate_limited'
  | 'cancelled'
  | 'lease_lost'
  | 'skipped';
export type LlmOutcome = 'ok' | 'error' | 'timeout' | 'aborted';

/** What a worker counts, as methods; labels never carry session ids. */
export class WorkerMetrics {
  private readonly jobs: Counter<'outcome'>;
  private readonly jobDuration: Histogram<'outcome'>;
  private readonly messageWait: Histogram;
  private readonly activeJobs: Gauge;
  private readonly llmDuration: Histogram<'agent' | 'model' | 'outcome'>;
  private readonly ttft: Histogram<'agent' | 'model'>;
  private readonly tokens: Counter<'agent' | 'model' | 'direction'>;
  private readonly queueJobs: Gauge<'state'>;
  private readonly retries: Counter<'model' | 'reason'>;
  private readonly breaker: Gauge<'model'>;
  private readonly errors: Counter<'reason'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.jobs = new Counter({
      name: 'chorus_jobs_total',
      help: 'Chat messages processed, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'chorus_job_duration_seconds',
      help: 'Time to answer one chat message, lease to last event.',
      labelNames: ['outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.messageWait = new Histogram({
      name: 'chorus_message_wait_seconds',
      help:
        'Time from a chat message’s acceptance (gateway clock) to the start of its first answer ' +
        'attempt (worker clock).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.activeJobs = new Gauge({
      name: 'chorus_worker_active_jobs',
      help: 'Chat jobs this worker is running now.',
      registers,
    });
    this.llmDuration = new Histogram({
      name: 'chorus_llm_request_duration_seconds',
      help: 'Model calls, request to end of stream.',
      labelNames: ['agent', 'model', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.ttft = new Histogram({
      name: 'chorus_llm_time_to_first_token_seconds',
      help: 'Model calls, request to first streamed token.',
      labelNames: ['agent', 'model'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.tokens = new Counter({
      name: 'chorus_llm_tokens_total',
      help: 'Model tokens, by direction (input or output).',
      labelNames: ['agent', 'model', 'direction'],
      registers,
    });
    this.retries = new Counter({
      name: 'chorus_llm_retries_total',
      help: 'Model requests retried, by what the failed attempt got (e.g. HTTP 429).',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.breaker = new Gauge({
      name: 'chorus_llm_breaker_state',
      help: 'Model circuit breaker: 0 closed, 1 half-open, 2 open.',
      labelNames: ['model'],
      registers,
    });
    this.errors = new Counter({
      name: 'chorus_worker_errors_total',
      help: 'Failures of the worker outside answers (background loops), by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.queueJobs = new Gauge({
      name: 'chorus_queue_jobs',
      help: 'Jobs in the chat queue, by state (sampled by workers).',
      labelNames: ['state'],
      registers,
    });
  }

  jobStarted(): () => void {
    this.activeJobs.inc();
    return () => this.activeJobs.dec();
  }
  jobFinished(outcome: JobOutcome, seconds: number): void {
    this.jobs.inc({ outcome });
    this.jobDuration.observe({ outcome }, seconds);
  }
  /** A message's first answer attempt starts; `acceptedAt`: the epoch ms its gateway stored it. */
  messageClaimed(acceptedAt: number): void {
    this.messageWait.observe(Math.max(0, Date.now() - acceptedAt) / 1000);
  }
  llmCall(agent: string, model: string, outcome: LlmOutcome, seconds: number): void {
    this.llmDuration.observe({ agent, model, outcome }, seconds);
  }
  llmFirstToken(agent: string, model: string, seconds: number): void {
    this.ttft.observe({ agent, model }, seconds);
  }
  llmTokens(agent: string, model: string, input: number, output: number): void {
    this.tokens.inc({ agent, model, direction: 'input' }, input);
    this.tokens.inc({ agent, model, direction: 'output' }, output);
  }
  llmRetry(model: string, reason: string): void {
    this.retries.inc({ model, reason });
  }
  breakerState(model: string, state: 'closed' | 'half-open' | 'open'): void {
    this.breaker.set({ model }, state === 'closed' ? 0 : state === 'half-open' ? 1 : 2);
  }
  error(reason: string): void {
    this.errors.inc({ reason });
  }
  queueSampled(counts: Record<string, number>): void {
    for (const [state, count] of Object.entries(counts)) this.queueJobs.set({ state }, count);
  }
}
