import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/local-net.mjs';
import { killProcess, spawnRedisServer } from './redis-server.js';

export const MASTER_NAME = 'chorus';

export interface TestSentinelGroup {
  /** `redis+sentinel://127.0.0.1:<s1>,…/chorus`: the product's REDIS_URL for it. */
  url: string;
  master: ChildProcess;
  masterPort: number;
  replicaPort: number;
  /** The master's port as the Sentinels currently name it. */
  currentMasterPort(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A master, one replica and `sentinels` Sentinels (quorum 1, down after 1 s), in memory only:
 * killing the master makes the Sentinels promote the replica within a few seconds.
 */
export async function startSentinelGroup(sentinels = 2): Promise<TestSentinelGroup> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-sentinel-'));
  const children: ChildProcess[] = [];
  const probes: Redis[] = [];
  const stop = async () => {
    for (const probe of probes) probe.disconnect();
    await Promise.all(children.map(killProcess));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const masterPort = await freePort();
    const master = await spawnRedisServer(masterPort);
    children.push(master);
    const replicaPort = await freePort();
    children.push(
      await spawnRedisServer(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]),
    );
    const sentinelPorts: number[] = [];
    for (let i = 0; i < sentinels; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its file as it learns the group, so each has its own writable copy.
      writeFileSync(
        conf,
        [
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 1`,
          `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
          `sentinel failover-timeout ${MASTER_NAME} 5000`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      children.push(await spawnRedisServer(port, ['--sentinel', '--dir', dir], conf));
      sentinelPorts.push(port);
    }
    const sentinel = new Redis(sentinelPorts[0]!, '127.0.0.1', { maxRetriesPerRequest: 1 });
    probes.push(sentinel);
    return {
      url: `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER_NAME}`,
      master,
      masterPort,
      replicaPort,
      currentMasterPort: async () => {
        const [, port] = (await sentinel.call(
          'SENTINEL',
          'GET-MASTER-ADDR-BY-NAME',
          MASTER_NAME,
        )) as [string, string];
        return Number(port);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
