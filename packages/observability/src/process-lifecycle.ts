import type { Logger } from 'pino';

/**
 * Runs a service's main: a failure the operator must fix (bad configuration, a bad team file)
 * ends the process with its message and code 1, no stack; SIGTERM and SIGINT stop it in order.
 */
export async function runService(
  name: string,
  isOperatorError: (error: unknown) => boolean,
  start: () => Promise<{ log: Logger; stop: () => Promise<void> }>,
): Promise<void> {
  let service;
  try {
    service = await start();
  } catch (error) {
    if (!isOperatorError(error)) throw error;
    process.stderr.write(`${name}: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const { log, stop } = service;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'shutting down');
      stop().then(
        () => process.exit(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
  process.on('unhandledRejection', (error) => log.error({ err: error }, 'unhandled rejection'));
}
