import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, redisAnswers } from '../../scripts/local-net.mjs';

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Spawns `redis-server` on `port` (127.0.0.1, in memory only) and waits until it answers PING;
 * `configFile`, when given, must come first on the command line (e.g. a Sentinel's).
 */
export async function spawnRedisServer(
  port: number,
  args: string[] = [],
  configFile?: string,
): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      ...(configFile ? [configFile] : []),
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      ...args,
    ],
    { stdio: 'ignore' },
  );
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) =>
      reject(new Error(`cannot start redis-server (is it installed?): ${error.message}`)),
    );
    child.once('exit', (code) => reject(new Error(`redis-server on ${port} exited with ${code}`)));
  });
  failed.catch(() => undefined); // only raced below; an exit after start-up is not an error here
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await Promise.race([redisAnswers(url), failed]))) {
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

/** Stops a child process with SIGKILL and waits for its exit. */
export async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** Starts `redis-server` on a free port, in memory only. */
export async function startRedisServer(
  port?: number,
): Promise<TestRedis & { process: ChildProcess }> {
  const chosen = port ?? (await freePort());
  const child = await spawnRedisServer(chosen);
  return {
    url: `redis://127.0.0.1:${chosen}`,
    port: chosen,
    process: child,
    stop: () => killProcess(child),
  };
}

export async function provideRedis(): Promise<TestRedis> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv && (await redisAnswers(fromEnv))) {
    const port = Number(new URL(fromEnv).port || 6379);
    return { url: fromEnv, port, stop: () => Promise.resolve() };
  }
  return startRedisServer();
}
