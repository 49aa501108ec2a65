export { createLogger, type Logger } from './logger.js';
export { createRegistry, METRICS_CONTENT_TYPE } from './registry.js';
export type { Registry } from 'prom-client';
export { GatewayMetrics } from './gateway-metrics.js';
export { WorkerMetrics, type JobOutcome, type LlmOutcome } from './worker-metrics.js';
export { runService } from './process-lifecycle.js';
export { startLoop } from './background-loop.js';
