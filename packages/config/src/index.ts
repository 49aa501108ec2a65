export { ConfigError, parseEnv, type Env } from './env.js';
export { loadGatewayConfig, type GatewayConfig } from './gateway-config.js';
export { loadWorkerConfig, type WorkerConfig } from './worker-config.js';
