import { ConfigError, loadWorkerConfig } from '@chorus/config';
import { createLogger } from '@chorus/observability';
import { TeamConfigError } from './team/team-config.js';
import { startWorker } from './worker.js';

let config;
try {
  config = loadWorkerConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`chorus-worker: ${error.message}\n`);
  process.exit(1);
}
const log = createLogger('chorus-worker', config.WORKER_ID, config.LOG_LEVEL);
let worker;
try {
  worker = await startWorker(config, log);
} catch (error) {
  if (!(error instanceof TeamConfigError)) throw error;
  process.stderr.write(`chorus-worker: ${error.message}\n`);
  process.exit(1);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'shutting down');
    worker.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
process.on('unhandledRejection', (error) => log.error({ err: error }, 'unhandled rejection'));
