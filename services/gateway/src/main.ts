import { ConfigError, loadGatewayConfig } from '@chorus/config';
import { createLogger } from '@chorus/observability';
import { startGateway } from './gateway.js';

let config;
try {
  config = loadGatewayConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`chorus-gateway: ${error.message}\n`);
  process.exit(1);
}
const log = createLogger('chorus-gateway', config.GATEWAY_ID, config.LOG_LEVEL);
const gateway = await startGateway(config, log);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'shutting down');
    gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
process.on('unhandledRejection', (error) => log.error({ err: error }, 'unhandled rejection'));
