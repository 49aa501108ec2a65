import type { TestProject } from 'vitest/node';
import { provideRedis } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** One Redis for the whole run: REDIS_URL when reachable, else a redis-server of our own. */
export default async function setup(project: TestProject) {
  const redis = await provideRedis();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
