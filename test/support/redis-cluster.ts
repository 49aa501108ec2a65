import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { clusterNodeArgs, freeClusterPort, joinRedisCluster } from '../../scripts/local-net.mjs';
import { killProcess, spawnRedisServer } from './redis-server.js';

export interface TestRedisCluster {
  /** `redis+cluster://127.0.0.1:<p1>,…`: the product's REDIS_URL for it. */
  url: string;
  ports: number[];
  /** A plain connection to one node, e.g. to count the keys it holds. */
  node(port: number): Redis;
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` nodes on free ports, in memory only: each node is a
 * `redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`.
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-cluster-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  const connections: Redis[] = [];
  const stop = async () => {
    for (const connection of connections) connection.disconnect();
    await Promise.all(children.map(killProcess));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const [port, child] = await spawnClusterNode(dir);
      ports.push(port);
      children.push(child);
    }
    await joinRedisCluster(ports);
    const node = (port: number) => {
      const connection = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      connections.push(connection);
      return connection;
    };
    return {
      url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
      ports,
      node,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** One cluster node; another process may take its ports before it starts, hence the attempts. */
async function spawnClusterNode(dir: string): Promise<[number, ChildProcess]> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeClusterPort();
    try {
      return [port, await spawnRedisServer(port, clusterNodeArgs(dir, port))];
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}
