import { ConfigError, loadGatewayConfig } from '@chorus/config';
import { createLogger, runService } from '@chorus/observability';
import { startGateway } from './gateway.js';

await runService(
  'chorus-gateway',
  (error) => error instanceof ConfigError,
  async () => {
    const config = loadGatewayConfig();
    const log = createLogger('chorus-gateway', config.GATEWAY_ID, config.LOG_LEVEL);
    const gateway = await startGateway(config, log);
    return { log, stop: () => gateway.stop() };
  },
);
