import type { Logger } from 'pino';

/** A periodic task that logs and counts its failures and keeps going; stop() waits for a run. */
export function startLoop(
  name: string,
  intervalMs: number,
  run: () => Promise<void> | void,
  log: Logger,
  onError: () => void,
) {
  let current: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    current = current.then(run).catch((error: unknown) => {
      onError();
      log.warn({ err: error, loop: name }, 'background loop failed');
    });
  }, intervalMs);
  timer.unref();
  return {
    async stop(): Promise<void> {
      clearInterval(timer);
      await current;
    },
  };
}
