import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, killProcess, spawnRedisServer } from './redis-server.js';

const run = promisify(execFile);

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
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    const node = (port: number) => {
      const connection = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      connections.push(connection);
      return connection;
    };
    // Every node must agree the cluster is whole before a client may rely on its slot map.
    const deadline = Date.now() + 20_000;
    for (const port of ports) {
      const probe = node(port);
      while (!(await probe.cluster('INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`cluster node ${port} never reached state ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
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

/**
 * One cluster node on a free port whose cluster bus port (port + 10000) is free too: a port
 * above 55535 has none, and a taken bus port makes redis-server exit at start. Another process
 * may take either port between the check and the start, hence the attempts.
 */
async function spawnClusterNode(dir: string): Promise<[number, ChildProcess]> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    if (
      port + 10_000 > 65_535 ||
      !(await freePort(port + 10_000).then(
        () => true,
        () => false,
      ))
    )
      continue;
    try {
      const child = await spawnRedisServer(port, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--dir',
        dir,
      ]);
      return [port, child];
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}
