import { z } from 'zod';
import {
  ConfigError,
  instanceId,
  int,
  keyPrefix,
  logLevel,
  parseEnv,
  redisUrl,
  sessionRetention,
  type Env,
} from './env.js';

const workerShape = {
  REDIS_URL: redisUrl,
  WORKER_ID: instanceId('wk'),
  METRICS_PORT: int(0, 65535, 9100),
  WORKER_CONCURRENCY: int(1, 1000, 32),
  MODEL_PROVIDER: z
    .enum(['auto', 'openai', 'offline', 'echo'], { error: 'must be auto, openai, offline or echo' })
    .default('auto'),
  ECHO_DELTAS: int(1, 10_000, 10),
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: z.url({ error: 'must be an http(s) URL' }).optional(),
  OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
  LOG_LEVEL: logLevel,
  KEY_PREFIX: keyPrefix,
  MODEL_TOKENS_PER_SESSION_PER_HOUR: int(0, 1_000_000_000, 200_000),
  LLM_TIMEOUT_MS: int(100, 600_000, 60_000),
  LLM_MAX_RETRIES: int(0, 10, 2),
  LEASE_TTL_MS: int(1_000, 600_000, 10_000),
  JOB_TIMEOUT_MS: int(1_000, 3_600_000, 180_000),
  DELTA_FLUSH_MS: int(0, 5_000, 40),
  OFFLINE_CHUNK_DELAY_MS: int(0, 10_000, 30),
  REPLY_GRACE_MS: int(0, 3_600_000, 60_000),
  TEAM_FILE: z.string().min(1).optional(),
  HISTORY_TOKEN_BUDGET: int(200, 1_000_000, 4_000),
  AGENT_LOG_MAX: int(0, 10_000, 50),
  LLM_BREAKER_THRESHOLD: int(1, 10_000, 5),
  LLM_BREAKER_RESET_MS: int(100, 3_600_000, 30_000),
  HISTORY_MAX_MESSAGES: int(2, 1_000, 40),
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000, 20_000),
  ...sessionRetention,
};

/** Every variable this service reads: the configuration table documents exactly these. */
export const WORKER_VARIABLES = Object.keys(workerShape);

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

export function loadWorkerConfig(env: Env = process.env) {
  const config = parseEnv(workerShape, env);
  if (config.MODEL_PROVIDER === 'openai' && !config.OPENAI_API_KEY) {
    throw ConfigError.about('OPENAI_API_KEY', 'is required when MODEL_PROVIDER is openai');
  }
  // A session's keys expire SESSION_TTL_SECONDS after its last message or answer: messages
  // waiting behind an answer that takes up to JOB_TIMEOUT_MS must outlive it, with room to spare.
  if (config.SESSION_TTL_SECONDS * 1_000 < 2 * config.JOB_TIMEOUT_MS) {
    throw ConfigError.about(
      'SESSION_TTL_SECONDS',
      `must be at least twice JOB_TIMEOUT_MS (${config.JOB_TIMEOUT_MS} ms), so that waiting messages outlive an answer`,
    );
  }
  return config;
}
