import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { KeySchema } from '../../packages/state/dist/index.js';
import {
  randomPrefix,
  startGateway,
  startWorker,
  type GatewayProcess,
  type WorkerProcess,
} from './service-process.js';

export interface ClusterOptions {
  gateways?: number;
  workers?: number;
  /** Environment for every process. */
  env?: Record<string, string>;
  gatewayEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
  /** A Redis of the test's own (e.g. a Redis Cluster's URL) instead of the run's shared one. */
  redisUrl?: string;
}

/**
 * Gateways and workers as real processes sharing the run's Redis under a key prefix of their own;
 * `stop()` kills them and deletes the prefix's keys.
 */
export class TestCluster {
  readonly gateways: GatewayProcess[] = [];
  readonly workers: WorkerProcess[] = [];
  readonly prefix = randomPrefix();
  /** The product's own key schema for this prefix: tests never build a key by hand. */
  readonly keys = new KeySchema(this.prefix);
  readonly redisUrl: string;

  private constructor(private readonly options: ClusterOptions) {
    this.redisUrl = options.redisUrl ?? inject('redisUrl');
  }

  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(options);
    try {
      await Promise.all([
        ...Array.from({ length: options.gateways ?? 2 }, () => cluster.addGateway()),
        ...Array.from({ length: options.workers ?? 1 }, () => cluster.addWorker()),
      ]);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get env(): Record<string, string> {
    return { REDIS_URL: this.redisUrl, KEY_PREFIX: this.prefix, ...this.options.env };
  }

  async addGateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
    const gateway = await startGateway({ ...this.env, ...this.options.gatewayEnv, ...env });
    this.gateways.push(gateway);
    return gateway;
  }

  async addWorker(env: Record<string, string> = {}): Promise<WorkerProcess> {
    const worker = await startWorker({
      OFFLINE_CHUNK_DELAY_MS: '2',
      ...this.env,
      ...this.options.workerEnv,
      ...env,
    });
    this.workers.push(worker);
    return worker;
  }

  gateway(index: number): GatewayProcess {
    const gateway = this.gateways[index];
    if (!gateway) throw new Error(`no gateway ${index}`);
    return gateway;
  }

  /** A Redis connection of the test's own to the run's shared Redis, closed by stop(). */
  redis(): Redis {
    if (this.options.redisUrl) throw new Error('this cluster runs on a Redis of its own test');
    this.connection ??= new Redis(this.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
    return this.connection;
  }
  private connection: Redis | undefined;

  async stop(): Promise<void> {
    await Promise.all([...this.gateways, ...this.workers].map((p) => p.kill('SIGKILL')));
    if (this.options.redisUrl) return; // the test's own Redis: the test disposes of it
    const redis = this.redis();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `*${this.prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
}
