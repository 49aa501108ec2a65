export { ConfigError, parseEnv, type Env } from './env.js';
export { GATEWAY_VARIABLES, loadGatewayConfig, type GatewayConfig } from './gateway-config.js';
export { WORKER_VARIABLES, loadWorkerConfig, type WorkerConfig } from './worker-config.js';
export { parseRedisUrl, redactRedisUrl, type RedisNode, type RedisTarget } from './redis-url.js';
