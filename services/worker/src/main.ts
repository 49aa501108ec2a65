import { ConfigError, loadWorkerConfig } from '@chorus/config';
import { createLogger, runService } from '@chorus/observability';
import { TeamConfigError } from './team/team-config.js';
import { startWorker } from './worker.js';

await runService(
  'chorus-worker',
  (error) => error instanceof ConfigError || error instanceof TeamConfigError,
  async () => {
    const config = loadWorkerConfig();
    const log = createLogger('chorus-worker', config.WORKER_ID, config.LOG_LEVEL);
    const worker = await startWorker(config, log);
    return { log, stop: () => worker.stop() };
  },
);
